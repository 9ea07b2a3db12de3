"""Train/test splitting rules shared by the loaders."""

from __future__ import annotations

import re
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


def group_of(name: str, pattern: str) -> str:
    """The group (speaker, session...) of a file name: the regex's group ``group`` if it has one, else its first
    group, else the whole match; a name the pattern does not match is an error naming both."""
    found = re.search(pattern, name)
    if found is None:
        raise ValueError(f"group pattern {pattern!r} does not match file name {name!r}")
    if "group" in found.re.groupindex:
        return found.group("group")
    return found.group(1) if found.re.groups else found.group(0)


def grouped_split(labels: Sequence[int], groups: Sequence[str], test_fraction: float,
                  seed: int) -> tuple[list[int], list[int]]:
    """Indices of a seeded split in which every group (e.g. a speaker) is wholly on one side: whole groups, in a
    seeded random order, go to the test part until it holds ``test_fraction`` of the clips.  Refused (naming the
    class) when a class would end up on one side only."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(labels) != len(groups):
        raise ValueError("labels and groups differ in length")
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError(f"a grouped split needs at least 2 groups, found {len(names)}: {names}")
    order = np.random.default_rng(seed).permutation(len(names))
    target = test_fraction * len(labels)
    test_groups: set[str] = set()
    count = 0
    sizes = {g: 0 for g in names}
    for g in groups:
        sizes[g] += 1
    for i in order:
        if count >= target or len(test_groups) == len(names) - 1:
            break
        test_groups.add(names[i])
        count += sizes[names[i]]
    test = [i for i, g in enumerate(groups) if g in test_groups]
    train = [i for i, g in enumerate(groups) if g not in test_groups]
    for side, idx in (("training", train), ("test", test)):
        missing = sorted(set(labels) - {labels[i] for i in idx})
        if missing:
            raise ValueError(f"the grouped split ({len(names)} groups, test groups {sorted(test_groups)}) leaves "
                             f"class(es) {missing} without {side} clips; use more groups or another seed")
    return train, test


def stratified_group_split(labels: Sequence[int], groups: Sequence[str], fraction: float,
                           seed: int) -> tuple[list[int], list[int]]:
    """Indices (rest, part) of a seeded split with every group wholly on one side and ``part`` close to ``fraction``
    of each class's clips, as far as whole groups allow (a validation carve: the clips of one speaker must not
    choose a learning rate for networks trained on that speaker's other clips).

    Groups are taken in a seeded random order; one joins ``part`` when it fills more of the classes' remaining
    targets than it overshoots them (or gives a class its first clip), and never when it would leave a class
    without clips in ``rest``.  Refused, naming the classes, when some class cannot be on both sides.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} groups")
    names = sorted(set(groups))
    if len(names) < 2:
        raise ValueError(f"a grouped split needs at least 2 groups, found {len(names)}: {names}")
    counts: dict[str, dict[int, int]] = {g: {} for g in names}
    for y, g in zip(labels, groups):
        counts[g][y] = counts[g].get(y, 0) + 1
    total = {c: sum(1 for y in labels if y == c) for c in sorted(set(labels))}
    target = {c: max(1, int(round(n * fraction))) for c, n in total.items()}
    taken = dict.fromkeys(total, 0)
    chosen: set[str] = set()
    for i in np.random.default_rng(seed).permutation(len(names)):
        if all(taken[c] >= target[c] for c in total):
            break
        g = names[i]
        if any(total[c] - taken[c] - k < 1 for c, k in counts[g].items()):
            continue  # the class would have no clips left outside the part
        fill = sum(min(k, max(target[c] - taken[c], 0)) for c, k in counts[g].items())
        over = sum(counts[g].values()) - fill
        if fill and (fill >= over or any(taken[c] == 0 for c in counts[g])):
            chosen.add(g)
            for c, k in counts[g].items():
                taken[c] += k
    missing = sorted(c for c in total if taken[c] == 0)
    if missing:
        raise ValueError(f"no whole group can give class(es) {missing} clips on both sides of the split "
                         f"({len(names)} groups); use more groups or a larger fraction")
    part = [i for i, g in enumerate(groups) if g in chosen]
    rest = [i for i, g in enumerate(groups) if g not in chosen]
    return rest, part
