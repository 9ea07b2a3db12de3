"""The result of every distillation or coreset method: a few (synthetic or selected) clips per class.

It lives in the normalised feature space the networks train on, and carries what is needed to use it later:
class names, the learned student learning rate (MTT), the feature settings and the normalisation statistics
(to turn features back into audio), and how it was made.  Saved as safetensors + JSON, never pickle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.features.normalize import FeatureStats

TENSORS_FILE = "distilled.safetensors"
META_FILE = "distilled.json"


@dataclass
class SyntheticSet:
    """``features`` ``(N, C, coeffs, frames)`` (normalised), ``labels`` ``(N,)``, grouped by class."""

    features: torch.Tensor
    labels: torch.Tensor
    classes: list[str]
    method: str
    lr: float | None = None
    stats: FeatureStats | None = None
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def clips_per_class(self) -> int:
        return int(torch.bincount(self.labels, minlength=len(self.classes)).max().item())

    def as_feature_set(self) -> FeatureSet:
        return FeatureSet(self.features.detach().cpu(), self.labels.cpu(), self.classes,
                          {"method": self.method, **self.meta})

    def save(self, folder: str | Path) -> Path:
        """Write ``distilled.safetensors`` and ``distilled.json`` into ``folder`` (the JSON last: it marks completion)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {"features": self.features.detach().cpu().contiguous(), "labels": self.labels.cpu().contiguous()}
        if self.stats is not None:
            tensors.update({f"stats_{k}": v.contiguous() for k, v in self.stats.state_dict().items()})
        tmp = folder / f".{TENSORS_FILE}.tmp"
        save_file(tensors, str(tmp))
        os.replace(tmp, folder / TENSORS_FILE)
        meta = {"classes": self.classes, "method": self.method, "lr": self.lr, "meta": self.meta}
        tmp = folder / f".{META_FILE}.tmp"
        tmp.write_text(json.dumps(meta, indent=2, default=str))
        os.replace(tmp, folder / META_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "SyntheticSet":
        folder = Path(folder)
        if not (folder / META_FILE).exists() or not (folder / TENSORS_FILE).exists():
            raise FileNotFoundError(
                f"{folder} holds no complete distilled set (expected {TENSORS_FILE} and {META_FILE})"
            )
        tensors = load_file(str(folder / TENSORS_FILE))
        meta = json.loads((folder / META_FILE).read_text())
        stats = None
        if "stats_mean" in tensors:
            stats = FeatureStats(tensors["stats_mean"], tensors["stats_std"])
        return cls(tensors["features"], tensors["labels"], meta["classes"], meta["method"], meta.get("lr"), stats,
                   meta.get("meta", {}))


class NotEnoughClipsError(ValueError):
    """A class has fewer real clips than the clips per class asked for."""


def check_clips_per_class(data: FeatureSet, cpc: int) -> None:
    """Refuse a CPC larger than the smallest class, naming the class."""
    if cpc < 1:
        raise ValueError(f"clips per class must be >= 1, got {cpc}")
    counts = torch.bincount(data.labels, minlength=data.num_classes)
    small = [(data.classes[c], int(n)) for c, n in enumerate(counts.tolist()) if n < cpc]
    if small:
        name, n = min(small, key=lambda t: t[1])
        raise NotEnoughClipsError(
            f"asked for {cpc} clips per class but class {name!r} has only {n} training clips "
            f"({len(small)} class(es) too small); choose cpc <= {int(counts.min())}"
        )
