"""RAVDESS speech: ``Actor_NN/03-01-EE-II-SS-RR-AA.{wav,flac}``, 8 emotions, 24 actors.

Default split is actor-independent (actors 1-20 train, 21-24 test), so no speaker is in both parts; the
stratified random split (``split_mode='stratified'``) is the easier protocol the paper's figures use.
"""

from __future__ import annotations

from pathlib import Path

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.layouts import LAYOUTS
from ddfad_apps.data.locate import find_dataset_dir
from ddfad_apps.data.splits import select, stratified_split

CLASSES = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
AUDIO_SUFFIXES = (".wav", ".flac")


def parse_name(name: str) -> dict[str, int]:
    """The seven numeric fields of a RAVDESS file name."""
    fields = Path(name).stem.split("-")
    if len(fields) != 7 or not all(f.isdigit() for f in fields):
        raise ValueError(f"not a RAVDESS file name: {name}")
    keys = ("modality", "channel", "emotion", "intensity", "statement", "repetition", "actor")
    return dict(zip(keys, map(int, fields)))


def list_ravdess(
    split: str = "train", data_root: str | Path | None = None, sample_rate: int = 16000, duration: float = 3.0,
    split_mode: str = "actor", test_actors: tuple[int, ...] = (21, 22, 23, 24), test_fraction: float = 0.2,
    seed: int = 0,
) -> ClipList:
    root = find_dataset_dir(LAYOUTS["ravdess"], data_root)
    paths: list[Path] = []
    labels: list[int] = []
    actors: list[int] = []
    for p in sorted(root.glob("Actor_*/*")):
        if p.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        try:
            f = parse_name(p.name)
        except ValueError:
            continue
        if f["channel"] != 1 or not 1 <= f["emotion"] <= 8:
            continue  # song clips or foreign files
        paths.append(p)
        labels.append(f["emotion"] - 1)
        actors.append(f["actor"])
    if not paths:
        raise FileNotFoundError(f"no RAVDESS speech clips (Actor_NN/03-01-*.wav|flac) under {root}")
    if split_mode == "actor":
        train = [i for i, a in enumerate(actors) if a not in test_actors]
        test = [i for i, a in enumerate(actors) if a in test_actors]
    elif split_mode == "stratified":
        train, test = stratified_split(labels, test_fraction, seed)
    else:
        raise ValueError(f"unknown RAVDESS split_mode {split_mode!r}; use 'actor' or 'stratified'")
    idx = select(split, train, test)
    return ClipList(
        "ravdess", split, root, [paths[i] for i in idx], [labels[i] for i in idx], CLASSES, sample_rate, duration,
        meta={"split_mode": split_mode, "seed": seed},
    )
