"""Content hashes that key on-disk artefacts (expert trajectories) to exactly the data and settings behind them."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import torch


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's bytes, shape and dtype (FSDD's features hash in ~0.1 s)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{tuple(t.shape)}|{t.dtype}".encode())
    h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def settings_digest(*parts: object) -> str:
    """Stable hash of dataclasses / dicts / strings (JSON with sorted keys)."""
    def plain(x: object) -> object:
        return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else x  # type: ignore[arg-type]

    return hashlib.sha256(json.dumps([plain(p) for p in parts], sort_keys=True, default=str).encode()).hexdigest()
