"""Tensors into and out of Avalanche datasets.

Our features live in one tensor per split; Avalanche wants ``AvalancheDataset`` objects (with ``targets`` and
task labels, which its replay loaders need).  This is the one place that crosses that boundary, both ways, so
the benchmarks and the storage policies agree on it.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader


def tensor_dataset(x: torch.Tensor, y: torch.Tensor, task: int = 0):
    """A task-aware Avalanche classification dataset over ``(x, y)`` (rows yield ``(x, y, task)``).

    Uses Avalanche's own tensor-dataset factory (private in 0.6, where the public ``make_tensor_...`` helper
    was removed); an empty ``x`` gives an empty dataset.
    """
    from avalanche.benchmarks.utils.classification_dataset import _make_taskaware_tensor_classification_dataset

    y = torch.as_tensor(y, dtype=torch.long)
    return _make_taskaware_tensor_classification_dataset(x, y, task_labels=task, targets=y)


def dataset_tensors(dataset, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """All inputs ``(N, ...)`` and integer targets ``(N,)`` of an Avalanche (or any ``(x, y, ...)``) dataset.

    Reads the eval view (no training augmentation) when the dataset has one, so what a storage policy keeps
    or distils are the stream's clean inputs.
    """
    if hasattr(dataset, "eval"):
        dataset = dataset.eval()
    if len(dataset) == 0:
        raise ValueError("the experience's dataset is empty")
    collate = getattr(dataset, "collate_fn", None)
    xs, ys = [], []
    for batch in DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0, collate_fn=collate):
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1], dtype=torch.long))
    return torch.cat(xs), torch.cat(ys)
