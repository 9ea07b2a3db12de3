"""Free Spoken Digit Dataset: ``recordings/{digit}_{speaker}_{take}.wav``; official split takes 0-4 test, 5-49 train."""

from __future__ import annotations

import re
from pathlib import Path

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.layouts import LAYOUTS
from ddfad_apps.data.locate import find_dataset_dir
from ddfad_apps.data.splits import select

CLASSES = [str(d) for d in range(10)]
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def list_fsdd(
    split: str = "train", data_root: str | Path | None = None, sample_rate: int = 8000, duration: float = 1.0,
) -> ClipList:
    root = find_dataset_dir(LAYOUTS["fsdd"], data_root)
    paths: list[Path] = []
    labels: list[int] = []
    takes: list[int] = []
    for p in sorted((root / "recordings").iterdir()):
        m = _NAME.match(p.name)
        if m is None:
            continue
        paths.append(p)
        labels.append(int(m.group(1)))
        takes.append(int(m.group(3)))
    if not paths:
        raise FileNotFoundError(f"no FSDD recordings named '<digit>_<speaker>_<take>.wav' in {root / 'recordings'}")
    train = [i for i, t in enumerate(takes) if t >= 5]
    test = [i for i, t in enumerate(takes) if t < 5]
    idx = select(split, train, test)
    return ClipList("fsdd", split, root, [paths[i] for i in idx], [labels[i] for i in idx], CLASSES, sample_rate, duration)
