"""On-disk cache of extracted features, keyed by the exact files of the split and every feature setting.

A second run with the same inputs loads a tensor instead of decoding and transforming thousands of clips; any
changed parameter, file, size or modification time gives another key, so a stale cache is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.locate import cache_dir
from ddfad_apps.features.config import FeatureConfig

# Bump when the extraction code changes its output, so caches written by older code are not reused.
FEATURE_CODE_VERSION = 2  # 2: mel filters and DCT built in float64


def feature_cache_dir() -> Path:
    return cache_dir() / "features"


def cache_key(clips: ClipList, config: FeatureConfig, on_error: str) -> str:
    payload = json.dumps(
        {"clips": clips.fingerprint(), "features": config.as_dict(), "on_error": on_error, "v": FEATURE_CODE_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def load_cached(path: Path) -> dict | None:
    if not path.exists():
        return None
    try:
        return torch.load(path, weights_only=True)
    except Exception:  # a truncated or foreign file is treated as absent and rewritten
        return None


def save_atomic(obj: dict, path: Path) -> None:
    """Write to a temporary name and rename: an interrupted write never leaves a file that looks complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
