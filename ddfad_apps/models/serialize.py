"""Save and load a model as data only: weights as safetensors plus the settings that rebuild it, as JSON.

Why not ``torch.save`` / pickle: loading a pickle runs whatever code it names, so a model fetched from a shared
MLflow store or folder could execute anything.  Here loading reads numbers (safetensors) and a small JSON of
settings, then builds the architecture through :func:`ddfad_apps.models.build_model` -- only the registry's
classes can ever be instantiated.

A model folder holds ``model.safetensors`` and ``model.json``::

    {"format": "ddfad-model", "version": 1, "name": "convnet", "num_classes": 10, "input_shape": [3, 20, 51],
     "kwargs": {"width": 64, "depth": 3}, "weights": "model.safetensors", "sha256": "..."}
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ddfad_apps.models.registry import MODEL_NAMES, build_model

WEIGHTS_FILE = "model.safetensors"
SPEC_FILE = "model.json"
FORMAT = "ddfad-model"
VERSION = 1
# Set by the spec itself, never by kwargs (build_model passes them to the constructor).
_RESERVED_KWARGS = frozenset({"in_channels", "num_classes", "input_size"})


@dataclass(frozen=True)
class ModelSpec:
    """What :func:`build_model` needs to rebuild a model: ``build_model(name, num_classes, input_shape, **kwargs)``."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    kwargs: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        name = str(self.name).lower()
        if name not in MODEL_NAMES:
            raise ValueError(f"unknown model {self.name!r}; valid names: {', '.join(MODEL_NAMES)}")
        if isinstance(self.num_classes, bool) or not isinstance(self.num_classes, int) or self.num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {self.num_classes!r}")
        shape = tuple(self.input_shape)
        if len(shape) != 3 or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in shape):
            raise ValueError(f"input_shape must be three positive integers (C, H, W), got {self.input_shape!r}")
        kwargs = dict(self.kwargs)
        for key, value in kwargs.items():
            if not isinstance(key, str) or key in _RESERVED_KWARGS:
                raise ValueError(f"invalid model kwarg name {key!r} (reserved: {', '.join(sorted(_RESERVED_KWARGS))})")
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ValueError(f"model kwarg {key!r} must be a JSON scalar, got {type(value).__name__}")
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "input_shape", shape)
        object.__setattr__(self, "kwargs", kwargs)

    @classmethod
    def of(cls, model: nn.Module, name: str, kwargs: Mapping[str, Any] | None = None) -> "ModelSpec":
        """The spec of a registry ``model`` built as ``name`` with ``kwargs``; class count and input shape are read
        from the model (every registry model keeps ``in_channels``, ``input_size`` and ``num_classes``)."""
        missing = [a for a in ("in_channels", "input_size", "num_classes") if not hasattr(model, a)]
        if missing:
            raise ValueError(
                f"{type(model).__name__} lacks {', '.join(missing)}: only models built by "
                f"ddfad_apps.models.build_model ({', '.join(MODEL_NAMES)}) can be saved"
            )
        shape = (int(model.in_channels), *(int(s) for s in model.input_size))
        return cls(name, int(model.num_classes), shape, dict(kwargs or {}))

    def build(self) -> nn.Module:
        return build_model(self.name, self.num_classes, self.input_shape, **self.kwargs)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes, "input_shape": list(self.input_shape),
                "kwargs": dict(self.kwargs)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_matches(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], where: str) -> None:
    """Same tensor names and shapes, or a ValueError listing the first differences."""
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    shapes = [f"{k}: {tuple(got[k].shape)} vs {tuple(expected[k].shape)}"
              for k in sorted(set(expected) & set(got)) if tuple(got[k].shape) != tuple(expected[k].shape)]
    if missing or extra or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else "",
                 f"shape mismatch {shapes[:5]}" if shapes else ""]
        raise ValueError(f"{where}: weights do not fit the settings ({'; '.join(p for p in parts if p)})")


def save_model(model: nn.Module, spec: ModelSpec, folder: str | os.PathLike) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``folder`` (created); returns the folder.

    The spec is checked against the weights first (a rebuilt model must have the same tensor names and shapes),
    so a wrong kwarg fails here, when it can still be fixed, rather than when someone loads the model.
    """
    folder = Path(folder)
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    _check_matches(spec.build().state_dict(), state, f"{type(model).__name__} with settings {spec.as_dict()}")
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / WEIGHTS_FILE
    save_file(state, str(weights), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "version": VERSION, **spec.as_dict(), "weights": WEIGHTS_FILE,
            "sha256": _sha256(weights)}
    (folder / SPEC_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def read_spec(folder: str | os.PathLike) -> ModelSpec:
    """The :class:`ModelSpec` of a model folder, with a clear error for a missing or malformed ``model.json``."""
    path = Path(folder) / SPEC_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a saved model folder holds {SPEC_FILE} and {WEIGHTS_FILE}")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ddfad model description (expected \"format\": \"{FORMAT}\")")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: unsupported model format version {meta.get('version')!r} (expected {VERSION})")
    try:
        return ModelSpec(meta["name"], meta["num_classes"], tuple(meta["input_shape"]), meta.get("kwargs") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: invalid model settings: {exc}") from exc


def load_model(folder: str | os.PathLike) -> nn.Module:
    """Rebuild the model saved in ``folder`` by :func:`save_model`, on the CPU in eval mode; no code is unpickled."""
    folder = Path(folder)
    spec = read_spec(folder)
    meta = json.loads((folder / SPEC_FILE).read_text())
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{weights} not found (the weights of the model described by {folder / SPEC_FILE})")
    if meta.get("sha256") and _sha256(weights) != meta["sha256"]:
        raise ValueError(f"{weights} does not match the checksum in {folder / SPEC_FILE} (corrupt or replaced)")
    try:
        model = spec.build()
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{folder / SPEC_FILE}: cannot build {spec.name} with {spec.as_dict()}: {exc}") from exc
    state = load_file(str(weights))
    _check_matches(model.state_dict(), state, str(weights))
    model.load_state_dict(state, strict=True)
    return model.eval()


__all__ = ["SPEC_FILE", "WEIGHTS_FILE", "ModelSpec", "load_model", "read_spec", "save_model"]
