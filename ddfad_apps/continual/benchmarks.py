"""Class-incremental Avalanche benchmarks from FD-MFCC feature splits (FSDD, RAVDESS, UrbanSound8K, folders).

Classes are shuffled by a seeded generator (not Avalanche's, which reseeds torch's global RNG) and split into
``num_experiences`` groups by Avalanche's ``class_incremental_benchmark``; train and test streams share the order.
"""

from __future__ import annotations


import torch

from strategies.avalanche_data import tensor_dataset
from ddfad_apps.features.dataset import FeatureSet


def class_order(num_classes: int, seed: int) -> list[int]:
    """A seeded random permutation of the class ids (seed -> the same order on every machine)."""
    return torch.randperm(num_classes, generator=torch.Generator().manual_seed(seed)).tolist()


def check_experiences(num_classes: int, num_experiences: int) -> None:
    if not 1 <= num_experiences <= num_classes:
        raise ValueError(f"cannot split {num_classes} classes into {num_experiences} experiences; "
                         f"choose 1..{num_classes}")


def feature_benchmark(train: FeatureSet, test: FeatureSet, num_experiences: int, seed: int = 0):
    """An Avalanche class-incremental scenario (``train_stream``, ``test_stream``) over feature tensors.

    The class order is :func:`class_order` of ``seed``; with classes not divisible by ``num_experiences`` the
    last experience takes the remainder (Avalanche's rule).
    """
    from avalanche.benchmarks.scenarios.supervised import class_incremental_benchmark

    if train.classes != test.classes:
        raise ValueError("train and test features must have the same classes")
    check_experiences(train.num_classes, num_experiences)
    missing = sorted(set(range(train.num_classes)) - set(test.labels.unique().tolist()))
    if missing:
        raise ValueError(f"test split has no clips of class(es) {[train.classes[c] for c in missing]}")
    order = class_order(train.num_classes, seed)
    per = train.num_classes // num_experiences
    sizes = [per] * (num_experiences - 1) + [train.num_classes - per * (num_experiences - 1)]
    data = {"train": tensor_dataset(train.features, train.labels),
            "test": tensor_dataset(test.features, test.labels)}
    return class_incremental_benchmark(data, class_order=order, num_classes_per_exp=sizes)
