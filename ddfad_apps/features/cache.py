"""On-disk cache of extracted features, keyed by the exact files of the split and every feature setting.

A second run with the same inputs loads a tensor instead of decoding and transforming thousands of clips; any
changed parameter, file, size or modification time gives another key, so a stale cache is never reused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch

from ddfad_apps.data.clips import ClipList
from ddfad_apps.data.locate import cache_dir
from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.storage import atomic_write, load_or_move_aside, locked

# Bump when the extraction code changes its output, so caches written by older code are not reused.
FEATURE_CODE_VERSION = 2  # 2: mel filters and DCT built in float64


def feature_cache_dir() -> Path:
    """Where extracted features are cached (``<cache>/features``, one ``.pt`` file per split and key)."""
    return cache_dir() / "features"


def cache_key(clips: ClipList, config: FeatureConfig, on_error: str) -> str:
    payload = json.dumps(
        {"clips": clips.fingerprint(), "features": config.as_dict(), "on_error": on_error, "v": FEATURE_CODE_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _read(path: Path) -> dict:
    obj = torch.load(path, weights_only=True)
    if not isinstance(obj, dict) or not {"features", "labels"} <= set(obj):
        raise ValueError("not a feature cache entry (expected a dict with 'features' and 'labels')")
    if len(obj["features"]) != len(obj["labels"]):
        raise ValueError(f"{len(obj['features'])} feature rows for {len(obj['labels'])} labels")
    return obj


def load_cached(path: Path) -> dict | None:
    """The cached entry, or None when absent; an unreadable one is named in a warning and moved aside."""
    return load_or_move_aside(path, _read)


def save_atomic(obj: dict, path: Path) -> None:
    """Write under a per-process temporary name and rename: never a half-written file that looks complete."""
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def load_or_build(path: Path, build: Callable[[], dict], on_wait: Callable[[str], None] | None = None) -> dict:
    """The entry at ``path``, built and saved by ``build()`` if absent or damaged: one builder per entry.

    A second process asking for the same entry waits on its lock while the first extracts, then loads the
    result instead of extracting the same clips again.
    """
    with locked(path, on_wait=on_wait):
        cached = load_cached(path)
        if cached is None:
            cached = build()
            save_atomic(cached, path)
    return cached
