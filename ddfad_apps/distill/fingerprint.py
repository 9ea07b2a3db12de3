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
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            # knobs added after caches were keyed (DIGEST_NEUTRAL) leave the key unchanged at their default, so a
            # new option does not orphan every cached set made without it
            neutral = getattr(x, "DIGEST_NEUTRAL", ())
            return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)
                    if not (f.name in neutral and getattr(x, f.name) == f.default)}
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        return x

    return hashlib.sha256(json.dumps([plain(p) for p in parts], sort_keys=True, default=str).encode()).hexdigest()
