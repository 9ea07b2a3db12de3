"""UrbanSound8K: ``metadata/UrbanSound8K.csv`` lists every clip with its fold and class; audio in ``audio/foldN/``.

One fold is the test set (default 10), the other nine train, as the data set's authors prescribe.
"""

from __future__ import annotations

import csv
from pathlib import Path

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.layouts import LAYOUTS
from ddfad_apps.data.locate import find_dataset_dir
from ddfad_apps.data.splits import select

CLASSES = [
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
]


def list_urbansound8k(
    split: str = "train", data_root: str | Path | None = None, sample_rate: int = 16000, duration: float = 4.0,
    test_fold: int = 10,
) -> ClipList:
    if not 1 <= test_fold <= 10:
        raise ValueError(f"UrbanSound8K test_fold must be 1..10, got {test_fold}")
    root = find_dataset_dir(LAYOUTS["urbansound8k"], data_root)
    paths: list[Path] = []
    labels: list[int] = []
    folds: list[int] = []
    missing: list[Path] = []
    with open(root / "metadata" / "UrbanSound8K.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            p = root / "audio" / f"fold{row['fold']}" / row["slice_file_name"]
            if not p.exists():
                missing.append(p)
                continue
            paths.append(p)
            labels.append(int(row["classID"]))
            folds.append(int(row["fold"]))
    if missing:
        raise FileNotFoundError(
            f"UrbanSound8K metadata lists {len(missing)} clip(s) missing on disk, e.g. {missing[0]}"
        )
    train = [i for i, f in enumerate(folds) if f != test_fold]
    test = [i for i, f in enumerate(folds) if f == test_fold]
    idx = select(split, train, test)
    return ClipList(
        "urbansound8k", split, root, [paths[i] for i in idx], [labels[i] for i in idx], CLASSES, sample_rate,
        duration, meta={"test_fold": test_fold},
    )
