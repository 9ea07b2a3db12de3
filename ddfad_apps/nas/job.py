"""Everything a worker process needs to join a study, as JSON (it crosses process and machine boundaries)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ddfad_apps.nas.proxies import ProxySpec
from ddfad_apps.nas.space import resolve_space
from search_spaces import SearchSpace


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

    @property
    def queued(self) -> bool:
        """Trials come from the queue (every architecture once), not from the sampler."""
        return self.sampler == "grid"

    def search_space(self) -> SearchSpace:
        return resolve_space(self.space, self.restriction)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "NASJob":
        data = json.loads(text)
        data["proxy"] = ProxySpec(**data["proxy"])
        return cls(**data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "NASJob":
        return cls.from_json(Path(path).read_text())
