"""Everything a worker process needs to join a study, as JSON (it crosses process and machine boundaries).

A job file never holds a secret: its storage URL is written redacted (``postgresql://user:***@host/db``) and the
real URL travels in the worker's environment (``$DDFAD_NAS_STORAGE``, see :func:`NASJob.load`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ddfad_apps.nas.proxies import ProxySpec
from ddfad_apps.nas.space import resolve_space
from ddfad_apps.nas.study import features_tag
from ddfad_apps.tracking.redact import MASK, redact_url
from search_spaces import SearchSpace

if TYPE_CHECKING:
    from ddfad_apps.features.dataset import FeatureSplits

STORAGE_ENV = "DDFAD_NAS_STORAGE"


@dataclass
class NASJob:
    """One study: which architectures (``space`` restricted by ``restriction``, optionally only ``archs``), scored
    by which proxy, on which data, stored where.  ``sampler='grid'`` evaluates every architecture once through
    the trial queue; ``tpe``/``random`` run until ``n_trials`` trials have finished."""

    storage: str
    study: str
    dataset: str
    proxy: ProxySpec
    space: str = "convnet720"
    restriction: dict[str, list[Any]] = field(default_factory=dict)
    archs: list[str] | None = None
    sampler: str = "grid"
    n_trials: int | None = None
    data_root: str | None = None
    device: str = "cpu"
    seed: int = 0
    threads: int = 1
    feature: str = "fd_mfcc"
    duration: float | None = None

    @property
    def queued(self) -> bool:
        """Trials come from the queue (every architecture once), not from the sampler."""
        return self.sampler == "grid"

    def search_space(self) -> SearchSpace:
        return resolve_space(self.space, self.restriction)

    def features_tag(self) -> str:
        """The part of the study name saying which features (see :func:`~ddfad_apps.nas.study.features_tag`)."""
        return features_tag(self.feature, self.duration)

    def load_splits(self, progress: bool = True) -> FeatureSplits:
        """The study's data: ``dataset``'s train/test features of kind ``feature`` at ``duration`` seconds."""
        from ddfad_apps.features import FeatureConfig, load_features

        return load_features(self.dataset, self.data_root, config=FeatureConfig(kind=self.feature),
                             duration=self.duration, progress=progress)

    def to_json(self) -> str:
        """The job as JSON, its storage URL redacted (it is written to disk and shown)."""
        return json.dumps({**asdict(self), "storage": redact_url(self.storage)}, indent=2)

    @classmethod
    def from_json(cls, text: str, storage: str | None = None, source: str = "job JSON") -> "NASJob":
        """The job in ``text``; ``storage`` is the real URL of a redacted one (it must redact to the same URL)."""
        data = json.loads(text)
        data["proxy"] = ProxySpec(**data["proxy"])
        written = data["storage"]
        if storage:
            if redact_url(storage) != redact_url(written):
                raise ValueError(f"{source}: the storage URL given ({redact_url(storage)}) is not the job's "
                                 f"({redact_url(written)}); check ${STORAGE_ENV}")
            data["storage"] = storage
        elif "://" in written and MASK in written and redact_url(written) == written:
            raise ValueError(f"{source}: storage {written} is redacted; give the real URL in ${STORAGE_ENV}")
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        """Write the job (storage URL redacted) to ``path``; see :func:`NASJob.load` for the real URL."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path, storage: str | None = None) -> "NASJob":
        """The job in ``path``, with ``storage`` (default ``$DDFAD_NAS_STORAGE``) as the real storage URL."""
        path = Path(path)
        return cls.from_json(path.read_text(), storage or os.environ.get(STORAGE_ENV), source=str(path))
