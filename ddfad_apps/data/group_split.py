"""A held-out-group split of a registered data set, written as a folder data set of links.

Why: a figure measured on FSDD's official split has every speaker on both sides, so it cannot say whether a gain
reaches people the training data never heard.  ``write_group_split('fsdd', ['lucas', 'nicolas'], out)`` writes
``out/train/<class>/`` and ``out/test/<class>/`` (symbolic links to the original clips, nothing copied) and a
``manifest.json`` with the data set's audio settings, class order and group pattern, so every command takes
``--dataset out`` and its validation carve keeps groups whole too.  The group of a clip comes from the file-name
pattern declared once in :data:`ddfad_apps.data.registry.DATASETS` (FSDD: speaker, RAVDESS: actor).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ddfad_apps.data.registry import DATASETS, list_clips
from ddfad_apps.data.splits import group_of
from ddfad_apps.storage.atomic import temp_path


@dataclass(frozen=True)
class GroupSplit:
    """What was written: the folder, and the groups and clip counts on each side."""

    folder: Path
    train_groups: tuple[str, ...]
    test_groups: tuple[str, ...]
    train_clips: int
    test_clips: int


def _match_groups(asked: Sequence[str], known: Sequence[str], dataset: str) -> list[str]:
    """The known groups the user named; '9' names RAVDESS actor '09'. An unknown name is an error listing all."""
    if not asked:
        raise ValueError(f"name at least one group of {dataset} to hold out; its groups are {', '.join(known)}")
    by_number = {int(g): g for g in known if g.isdigit()}
    chosen: list[str] = []
    unknown: list[str] = []
    for name in asked:
        if name in known:
            chosen.append(name)
        elif name.isdigit() and int(name) in by_number:
            chosen.append(by_number[int(name)])
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{dataset} has no group(s) {unknown}; its groups are {', '.join(sorted(known))}")
    if len(set(chosen)) == len(known):
        raise ValueError(f"holding out every group of {dataset} leaves nothing to train on; name fewer test groups")
    return sorted(set(chosen))


def write_group_split(dataset: str, test_groups: Sequence[str], out: str | Path,
                      data_root: str | Path | None = None, grouped_carve: bool = True) -> GroupSplit:
    """Write ``out`` holding ``test_groups`` of registered ``dataset`` out as its test split.

    ``grouped_carve=False`` leaves the group pattern out of the manifest, so the protocol's validation carve is
    the stratified one (as the registered data sets get).  ``out`` must not exist yet: the folder is built under a
    temporary name and renamed into place, so an interrupted or concurrent run never leaves a split that looks
    complete, and an existing folder is never mixed with a new one.
    """
    if dataset not in DATASETS:
        raise ValueError(f"data split works on the registered data sets {sorted(DATASETS)}, not {dataset!r}")
    spec = DATASETS[dataset]
    out = Path(out).expanduser().resolve()
    if out.exists():
        raise FileExistsError(f"{out} already exists; give a new folder (a split is never written over another)")
    clips = [list_clips(dataset, split, data_root=data_root) for split in ("train", "test")]
    classes = clips[0].classes
    rows = [(p, label) for part in clips for p, label in zip(part.paths, part.labels)]
    groups = [group_of(p.name, spec.group_pattern) for p, _ in rows]
    test = set(_match_groups(list(test_groups), sorted(set(groups)), dataset))
    sides = ["test" if g in test else "train" for g in groups]
    present = {(side, label) for side, (_, label) in zip(sides, rows)}
    for side in ("train", "test"):
        missing = [name for c, name in enumerate(classes) if (side, c) not in present]
        if missing:
            raise ValueError(f"holding out {sorted(test)} leaves class(es) {missing} without {side} clips; "
                             "choose other groups")
    tmp = temp_path(out)
    try:
        for side, (path, label) in zip(sides, rows):
            folder = tmp / side / classes[label]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / path.name).symlink_to(path.resolve())
        manifest = {"sample_rate": spec.sample_rate, "duration": spec.duration, "classes": classes,
                    "source": {"dataset": dataset, "test_groups": sorted(test)}}
        if grouped_carve:
            manifest["group_pattern"] = spec.group_pattern
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        os.rename(tmp, out)  # fails if another run created ``out`` meanwhile: its folder is left as it was
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    counts = Counter(sides)
    return GroupSplit(out, tuple(sorted(set(groups) - test)), tuple(sorted(test)), counts["train"], counts["test"])
