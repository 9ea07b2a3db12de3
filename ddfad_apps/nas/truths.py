"""Ground truths cached per data set and recipe, in one portable file, reused by every run and machine.

Whole-data training is the dearest part of NAS evidence, and its result depends only on the data, the training
recipe and the architecture's model configuration, never on the proxy, the sample, the Optuna storage or the
run folder.  So results live in ``$DDFAD_CACHE/nas/truths/<dataset>-<recipe>-<data>.json``, keyed by

* the **data**: a content digest of the train and test features and labels (bit-exact; no path, size or mtime,
  so the file is valid on any machine that extracts the same features),
* the **recipe**: the whole-data :class:`~ddfad_apps.nas.proxies.ProxySpec` (epochs, lr, batch size, seed, ...),
* and inside the file, per entry, the **model configuration** (model name plus every constructor argument), so
  a restricted or a user-registered space with the same models shares the entries.

Copy the file into another machine's cache folder (or pass ``root``) to reuse it there.  Entries are added one at
a time, under a file lock and by atomic rewrites, so a killed run keeps what it finished and concurrent runs
merge instead of overwriting each other.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from ddfad_apps.data.locate import cache_dir
from ddfad_apps.distill.fingerprint import settings_digest, tensor_digest
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.nas.proxies import ProxySpec
from ddfad_apps.nas.report import ArchResult
from ddfad_apps.storage.atomic import atomic_write
from ddfad_apps.storage.locks import locked
from search_spaces import Config, SearchSpace

FORMAT = 1
CACHE_FOLDER = "nas/truths"  # under the cache root; listed by ``ddfad-apps cache``'s registry as "nas-truths"


def truth_cache_dir() -> Path:
    return cache_dir() / CACHE_FOLDER


def data_digest(train: FeatureSet, test: FeatureSet) -> str:
    """Content of the train and test split (features and labels); the same on every machine with the same data."""
    return settings_digest(tensor_digest(train.features), tensor_digest(train.labels),
                           tensor_digest(test.features), tensor_digest(test.labels))[:16]


def recipe_digest(spec: ProxySpec) -> str:
    """The training recipe without its display name (a renamed proxy with the same recipe shares the entries)."""
    if not spec.whole_data:
        raise ValueError(f"a ground truth trains on the whole training set; proxy {spec.name!r} uses {spec.method}")
    return settings_digest({k: v for k, v in spec.as_dict().items() if k != "name"})[:12]


def model_key(space: SearchSpace, config: Config) -> str:
    """``convnet(activation=relu,depth=3,...)``: the model and all its constructor arguments, sorted."""
    kwargs = space.model_kwargs(config)
    return f"{space.model}(" + ",".join(f"{k}={kwargs[k]}" for k in sorted(kwargs)) + ")"


class TruthCache:
    """The cached ground truths of one data set (``train``/``test``) under one whole-data recipe ``spec``."""

    def __init__(self, dataset: str, train: FeatureSet, test: FeatureSet, spec: ProxySpec,
                 root: Path | None = None) -> None:
        self.spec = spec
        self.data = data_digest(train, test)
        self.recipe = recipe_digest(spec)
        name = re.sub(r"[^\w.-]", "_", Path(str(dataset)).name)[:60] or "data"
        self.path = (root or truth_cache_dir()) / f"{name}-{self.recipe}-{self.data}.json"

    def _read(self) -> dict[str, Any]:
        try:
            stored = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"ground-truth cache {self.path} is unreadable ({exc}); delete it to recompute") from exc
        if stored.get("data") != self.data or stored.get("recipe_digest") != self.recipe:
            raise ValueError(f"ground-truth cache {self.path} holds data {stored.get('data')} / recipe "
                             f"{stored.get('recipe_digest')}, expected {self.data} / {self.recipe}")
        return stored.get("entries", {})

    def get_many(self, space: SearchSpace, configs: Iterable[Config]) -> dict[str, ArchResult]:
        """Cached results of ``configs``, by architecture key (missing ones are left out)."""
        entries = self._read()
        out = {}
        for config in configs:
            entry = entries.get(model_key(space, config))
            if entry is not None:
                out[space.key(config)] = ArchResult(**entry)
        return out

    def put(self, space: SearchSpace, results: Mapping[str, ArchResult]) -> None:
        """Add ``results`` (architecture key -> result); unfinished ones (no accuracy and no reason) are skipped."""
        new = {model_key(space, space.parse(a)): vars(r) for a, r in results.items()
               if math.isfinite(r.accuracy) or r.reason}
        if not new:
            return
        with locked(self.path):
            entries = {**self._read(), **new}
            payload = {"format": FORMAT, "data": self.data, "recipe_digest": self.recipe,
                       "recipe": self.spec.as_dict(), "entries": entries}
            atomic_write(self.path, lambda tmp: tmp.write_text(json.dumps(payload, indent=1, default=str)))


def compute_truths(cache: TruthCache, space: SearchSpace, configs: list[Config], train: FeatureSet,
                   test: FeatureSet, *, device: str = "cpu", progress: bool = True,
                   on_trained: Callable[[str, ArchResult], None] | None = None
                   ) -> tuple[dict[str, ArchResult], int]:
    """Ground truths of ``configs`` in this process: cached ones read, the others trained and cached one by one.

    Returns (results by architecture key, how many were trained now).
    """
    from ddfad_apps.nas.objective import train_and_score
    from ddfad_apps.nas.space import build
    from ddfad_apps.training.loops import NonFiniteLossError

    results = cache.get_many(space, configs)
    todo = [c for c in configs if space.key(c) not in results]
    for config in tqdm(todo, desc=f"ground truth ({cache.spec.epochs} epochs)", disable=not progress):
        key = space.key(config)
        started = time.process_time()
        try:
            torch.manual_seed(cache.spec.seed)
            model = build(space, config, train.num_classes, train.input_shape)
        except (ValueError, RuntimeError):
            result = ArchResult(math.nan, 0.0, "FAIL", "input_too_small")
        else:
            try:
                acc = train_and_score(cache.spec, space, config, model, train, test, seed=cache.spec.seed,
                                      device=device)
                result = ArchResult(acc, time.process_time() - started, "COMPLETE")
            except NonFiniteLossError:
                result = ArchResult(math.nan, time.process_time() - started, "FAIL", "nan_loss")
        cache.put(space, {key: result})
        results[key] = result
        if on_trained is not None:
            on_trained(key, result)
    return results, len(todo)
