"""Bring your own data: ``root/<class>/*.wav|flac|ogg`` (one sub-folder per class).

If ``root`` holds ``train/`` and ``test/`` sub-folders, those are the split; otherwise a seeded split, grouped when
a group is known for each clip (``group_pattern``, a regex on the file name such as ``_(?P<group>[a-z]+)_``, or
the manifest's ``group_pattern`` or ``groups`` {file name: group}) so no speaker is on both sides, else stratified
over files.  A ``manifest.json`` with ``sample_rate``/``duration`` (as written for a distilled set) sets the audio
defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.splits import group_of, grouped_split, select, stratified_split

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def _scan(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], list[int], list[str]]:
    class_dirs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = classes or [d.name for d in class_dirs]
    if not classes:
        raise FileNotFoundError(f"{folder} has no class sub-folders; expected <root>/<class>/<clip>.wav")
    paths: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
        paths.extend(files)
        labels.extend([label] * len(files))
    return paths, labels, classes


def clip_groups(paths: list[Path], manifest: dict, group_pattern: str | None) -> list[str] | None:
    """Each clip's group from ``group_pattern`` (or the manifest's), else the manifest's ``groups`` map, else None."""
    pattern = group_pattern or manifest.get("group_pattern")
    if pattern:
        return [group_of(p.name, pattern) for p in paths]
    table = manifest.get("groups")
    if table:
        missing = [p.name for p in paths if p.name not in table]
        if missing:
            raise ValueError(f"manifest.json 'groups' names no group for {len(missing)} clip(s), e.g. {missing[:3]}")
        return [str(table[p.name]) for p in paths]
    return None


def list_folder(
    root: str | Path, split: str = "train", sample_rate: int | None = None, duration: float | None = None,
    test_fraction: float = 0.2, seed: int = 0, group_pattern: str | None = None,
) -> ClipList:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"folder data set {root} does not exist; expected <root>/<class>/<clip>.wav")
    manifest = json.loads((root / "manifest.json").read_text()) if (root / "manifest.json").exists() else {}
    sample_rate = sample_rate or manifest.get("sample_rate") or 16000
    duration = duration or manifest.get("duration") or 1.0
    if (root / "train").is_dir() and (root / "test").is_dir():
        tr_paths, tr_labels, classes = _scan(root / "train", manifest.get("classes"))
        te_paths, te_labels, _ = _scan(root / "test", classes)
        paths, labels = tr_paths + te_paths, tr_labels + te_labels
        train = list(range(len(tr_paths)))
        test = list(range(len(tr_paths), len(paths)))
        groups = clip_groups(paths, manifest, group_pattern)  # the split is the user's; the carve keeps groups whole
    else:
        paths, labels, classes = _scan(root, manifest.get("classes"))
        groups = clip_groups(paths, manifest, group_pattern)
        if split == "all":
            train, test = list(range(len(paths))), []
        elif groups is not None:
            train, test = grouped_split(labels, groups, test_fraction, seed)
        else:
            train, test = stratified_split(labels, test_fraction, seed)
    idx = select(split, train, test)
    meta: dict = {"manifest": manifest}
    if groups is not None:  # each clip's group travels with it, so a validation carve can keep groups whole
        meta["groups"] = [groups[i] for i in idx]
    return ClipList(
        "folder", split, root, [paths[i] for i in idx], [labels[i] for i in idx], classes, int(sample_rate),
        float(duration), meta=meta,
    )
