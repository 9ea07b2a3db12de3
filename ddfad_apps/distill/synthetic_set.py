"""The result of every distillation or coreset method: a few (synthetic or selected) clips per class.

It lives in the normalised feature space the networks train on, and carries what is needed to use it later:
class names, the learned student learning rate (MTT), the feature settings and the normalisation statistics
(to turn features back into audio), and how it was made.  Saved as safetensors + JSON, never pickle.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ddfad_apps.distill.compat import describe_nonfinite
from ddfad_apps.features.config import FeatureConfig
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
    def feature_config(self) -> FeatureConfig:
        """The feature settings the set was made in (FD-MFCC defaults for a set that records none)."""
        recorded = self.meta.get("features")
        return FeatureConfig(**recorded) if recorded else FeatureConfig()

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
        """Read a set written by :meth:`save`, checked before use.

        Raises ``FileNotFoundError`` when a file is missing and :class:`InvalidSetError` (naming the file and the
        fault) when a file is unreadable or its contents are inconsistent: edited or truncated files, wrong
        shapes, labels out of range, NaN/inf values, a class without clips.
        """
        folder = Path(folder)
        if not (folder / META_FILE).exists() or not (folder / TENSORS_FILE).exists():
            raise FileNotFoundError(
                f"{folder} holds no complete distilled set (expected {TENSORS_FILE} and {META_FILE})"
            )
        meta = _read_meta(folder / META_FILE)
        tensors = _read_tensors(folder / TENSORS_FILE)
        stats = _check_tensors(tensors, meta["classes"], folder / TENSORS_FILE)
        _check_feature_config(meta.get("meta", {}).get("features"), tensors["features"], folder / META_FILE)
        return cls(tensors["features"], tensors["labels"], meta["classes"], meta["method"], meta.get("lr"), stats,
                   meta.get("meta", {}))


class InvalidSetError(ValueError):
    """A saved distilled set's file is unreadable or inconsistent (the message names the file and the fault)."""


def _check_feature_config(recorded: object, features: torch.Tensor, path: Path) -> None:
    """The recorded feature settings (used to rebuild audio and to match data) must be valid and fit the tensor."""
    if recorded is None:
        return
    try:
        config = FeatureConfig(**recorded)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InvalidSetError(f"{path}: meta.features is not a valid feature configuration ({exc})") from exc
    if tuple(features.shape[1:3]) != (config.channels, config.n_coeffs):
        raise InvalidSetError(
            f"{path}: meta.features describes {config.channels} channel(s) x {config.n_coeffs} coefficients but the "
            f"features are {tuple(features.shape[1:3])}"
        )


def _read_meta(path: Path) -> dict:
    """``distilled.json``, with the fields :meth:`SyntheticSet.load` relies on checked."""
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidSetError(f"{path} is not valid JSON ({exc}); the file is damaged or was edited") from exc
    if not isinstance(meta, dict):
        raise InvalidSetError(f"{path} must hold a JSON object, found {type(meta).__name__}")
    classes = meta.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise InvalidSetError(f"{path}: 'classes' must be a non-empty list of class names, found {classes!r}")
    if len(set(classes)) != len(classes):
        raise InvalidSetError(f"{path}: 'classes' names a class twice: {classes!r}")
    if not isinstance(meta.get("method"), str):
        raise InvalidSetError(f"{path}: 'method' must be a string, found {meta.get('method')!r}")
    lr = meta.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr)
                           or lr <= 0):
        raise InvalidSetError(f"{path}: 'lr' (the learned learning rate) must be a positive number or null, "
                              f"found {lr!r}")
    if not isinstance(meta.get("meta", {}), dict):
        raise InvalidSetError(f"{path}: 'meta' must be a JSON object, found {meta.get('meta')!r}")
    return meta


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types (and OSError, ValueError) on bad files
        raise InvalidSetError(f"{path} is not a readable safetensors file ({type(exc).__name__}: {exc}); "
                              "the file is truncated, damaged or not a distilled set") from exc


def _check_tensors(tensors: dict[str, torch.Tensor], classes: list[str], path: Path) -> FeatureStats | None:
    """Check the tensors' presence, shapes, label range and values; return the normalisation statistics."""
    missing = [k for k in ("features", "labels") if k not in tensors]
    if missing:
        raise InvalidSetError(f"{path} lacks tensor(s) {missing}; found {sorted(tensors)}")
    features, labels = tensors["features"], tensors["labels"]
    if features.dim() != 4 or not features.is_floating_point():
        raise InvalidSetError(f"{path}: 'features' must be a float tensor (clips, channels, coefficients, frames), "
                              f"found {features.dtype} of shape {tuple(features.shape)}")
    if labels.dim() != 1 or labels.is_floating_point() or labels.dtype == torch.bool:
        raise InvalidSetError(f"{path}: 'labels' must be a 1-D integer tensor, found {labels.dtype} of shape "
                              f"{tuple(labels.shape)}")
    if features.shape[0] == 0 or labels.shape[0] != features.shape[0]:
        raise InvalidSetError(f"{path}: {features.shape[0]} clips of features but {labels.shape[0]} labels")
    out_of_range = torch.nonzero((labels < 0) | (labels >= len(classes)), as_tuple=False).flatten()
    if len(out_of_range):
        i = int(out_of_range[0])
        raise InvalidSetError(f"{path}: {len(out_of_range)} label(s) outside 0..{len(classes) - 1} for the "
                              f"{len(classes)} classes, e.g. label {int(labels[i])} at index {i}")
    counts = torch.bincount(labels.long(), minlength=len(classes))
    empty = [classes[c] for c in range(len(classes)) if counts[c] == 0]
    if empty:
        raise InvalidSetError(f"{path}: class(es) {empty} have no clips")
    nonfinite = describe_nonfinite(features, "the features")
    if nonfinite:
        raise InvalidSetError(f"{path}: {nonfinite}")
    if ("stats_mean" in tensors) != ("stats_std" in tensors):
        raise InvalidSetError(f"{path} holds only one of the tensors stats_mean / stats_std")
    if "stats_mean" not in tensors:
        return None
    mean, std = tensors["stats_mean"], tensors["stats_std"]
    want = (features.shape[1], features.shape[2], 1)
    if tuple(mean.shape) != want or tuple(std.shape) != want:
        raise InvalidSetError(f"{path}: normalisation statistics must have shape {want} for these features, found "
                              f"mean {tuple(mean.shape)}, std {tuple(std.shape)}")
    if not (torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all()):
        raise InvalidSetError(f"{path}: normalisation statistics hold NaN/inf values or a std <= 0")
    return FeatureStats(mean, std)


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
