"""Proxies: cheap stand-ins for "train this architecture on the whole data set", and the ground truth itself.

A proxy is a training set plus a training recipe.  ``distilled`` (the DDFAD claim), ``random`` and ``herding``
train on ``cpc`` clips per class made by the distillation engine; ``early-stopping`` (10 epochs, the paper's rule)
and ``early-stopping-short`` (1 epoch) train on the whole training set; ``full`` is the ground truth every proxy is compared with.  Each small proxy set
is made ONCE per (data set, method, cpc, preset, seed) and cached on disk under a file lock, so every worker
process (and every later run) trains on the very same clips.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ddfad_apps.data.locate import cache_dir
from ddfad_apps.distill.fingerprint import settings_digest, tensor_digest
from ddfad_apps.features.dataset import FeatureSet


@dataclass(frozen=True)
class ProxySpec:
    """How one proxy scores an architecture.

    ``method`` is a distillation/coreset method of :func:`ddfad_apps.distill.distill` (``None``: the whole
    training set).  Small sets train like the engine's evaluation (augmentation, lr stepped at half time);
    whole-set proxies train like ``ddfad-apps train`` (cosine schedule, no augmentation).
    ``lr=None`` uses the set's learned learning rate (MTT) when it has one, else 0.01.
    """

    name: str
    method: str | None = None
    cpc: int = 20
    epochs: int = 30
    lr: float | None = 0.01
    batch_size: int = 50
    augment: bool = True
    preset: str = "fast"
    seed: int = 0

    @property
    def whole_data(self) -> bool:
        return self.method is None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def digest(self) -> str:
        return settings_digest(self)[:10]


# The paper's proxies: 20 clips per class (200 clips x 30 epochs in batches of 50 = 120 steps), early stopping
# after 10 whole-data epochs, and a cheaper early stopping (1 epoch).  The ground truth trains 15 whole-data epochs
# (the recipe of ``ddfad-apps train``, longer than either early stopping); it must stay the same for all
# proxies compared.  Whole-data proxies are "early stopping": a field of this registry, not a name check.
PROXIES: dict[str, ProxySpec] = {
    "distilled": ProxySpec("distilled", method="mtt"),
    "random": ProxySpec("random", method="random"),
    "herding": ProxySpec("herding", method="herding"),
    "early-stopping": ProxySpec("early-stopping", epochs=10, batch_size=64, augment=False),
    "early-stopping-short": ProxySpec("early-stopping-short", epochs=1, batch_size=64, augment=False),
    "full": ProxySpec("full", epochs=15, batch_size=64, augment=False),
}
TRUTH = "full"
PROXY_NAMES: tuple[str, ...] = tuple(n for n in PROXIES if n != TRUTH)


def proxy_spec(name: str, **overrides: Any) -> ProxySpec:
    """The named proxy with fields replaced by the non-None ``overrides`` (e.g. ``epochs=50``)."""
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; use one of {', '.join(PROXIES)}")
    changes = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(changes) - set(ProxySpec.__dataclass_fields__)
    if unknown:
        raise ValueError(f"unknown proxy settings {sorted(unknown)}")
    return replace(PROXIES[name], **changes)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock across processes of one machine, so a proxy set is made by one of them only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def proxy_folder(spec: ProxySpec, train: FeatureSet, root: Path | None = None) -> Path:
    """Cache folder of a proxy set, keyed by the training data's content and everything that makes the set."""
    from ddfad_apps.distill.presets import method_settings

    # the method's settings are part of the key: a changed preset must make a new set, not reuse a stale one
    made_by = method_settings(spec.method, spec.preset, spec.cpc, len(train))
    data = settings_digest(tensor_digest(train.features), tensor_digest(train.labels), made_by)[:12]
    name = f"{train.meta.get('dataset', 'data')}-{spec.method}-cpc{spec.cpc}-{spec.preset}-seed{spec.seed}-{data}"
    return (root or cache_dir() / "nas" / "proxies") / name


def proxy_train_set(
    spec: ProxySpec, train: FeatureSet, *, device: torch.device | str = "cpu", root: Path | None = None,
    progress: bool = True,
) -> tuple[FeatureSet, float | None, dict[str, Any]]:
    """The training set of a proxy, its learned lr (MTT) and facts for the report (make seconds, cache folder).

    The first caller makes and saves the set (MTT takes minutes); others wait on the lock and load it.
    """
    if spec.whole_data:
        return train, None, {"clips": len(train), "make_seconds": 0.0, "make_cpu_seconds": 0.0}
    from ddfad_apps.distill import SyntheticSet, distill

    folder = proxy_folder(spec, train, root)
    with _file_lock(folder.with_name(folder.name + ".lock")):
        started, cpu = time.perf_counter(), time.process_time()
        try:
            syn = SyntheticSet.load(folder)
            made = False
        except FileNotFoundError:
            syn = distill(train, spec.cpc, spec.method, spec.preset, device=device, seed=spec.seed,
                          progress=progress)
            syn.meta["make_seconds"] = time.perf_counter() - started
            syn.meta["make_cpu_seconds"] = time.process_time() - cpu  # this process, all its threads
            syn.save(folder)
            made = True
    info = {"clips": len(syn), "folder": str(folder), "made_now": made,
            "make_seconds": float(syn.meta.get("make_seconds", time.perf_counter() - started)),
            "make_cpu_seconds": float(syn.meta.get("make_cpu_seconds", syn.meta.get("make_seconds", 0.0)))}
    return syn.as_feature_set(), syn.lr, info
