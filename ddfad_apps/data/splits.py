"""Train/test splitting rules shared by the loaders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def stratified_split(labels: Sequence[int], test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of a seeded random split that keeps every class's share in both parts (at least one clip each)."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    train: list[int] = []
    test: list[int] = []
    for c in np.unique(labels_arr):
        idx = np.flatnonzero(labels_arr == c)
        rng.shuffle(idx)
        n_test = min(max(1, int(round(len(idx) * test_fraction))), len(idx) - 1) if len(idx) > 1 else 0
        test.extend(idx[:n_test].tolist())
        train.extend(idx[n_test:].tolist())
    return sorted(train), sorted(test)


def select(split: str, train_idx: Sequence[int], test_idx: Sequence[int]) -> list[int]:
    """The indices of ``split`` ('train', 'test' or 'all')."""
    if split == "train":
        return list(train_idx)
    if split == "test":
        return list(test_idx)
    if split == "all":
        return sorted([*train_idx, *test_idx])
    raise ValueError(f"unknown split {split!r}; use 'train', 'test' or 'all'")
