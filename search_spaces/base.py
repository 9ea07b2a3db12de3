"""What a search space is: a model name and a few categorical dimensions, declared as plain data.

Everything else (the Optuna search space, the grid, the models, stratified samples) is derived from the
declaration in :mod:`ddfad_apps.nas.space`, so a space is written down once and cannot drift between them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Config = dict[str, Any]


@dataclass(frozen=True)
class SearchSpace:
    """``dimensions`` maps a constructor argument of ``model`` to its candidate values (order = grid order).

    ``fixed`` holds constructor arguments every architecture shares (not searched).
    """

    name: str
    model: str
    dimensions: Mapping[str, tuple[Any, ...]]
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        for dim, values in self.dimensions.items():
            if not values:
                raise ValueError(f"search space {self.name!r}: dimension {dim!r} has no values")
            if len(set(values)) != len(values):
                raise ValueError(f"search space {self.name!r}: dimension {dim!r} repeats a value: {values}")
            clash = set(self.dimensions) & set(self.fixed)
            if clash:
                raise ValueError(f"search space {self.name!r}: {sorted(clash)} are both searched and fixed")

    @property
    def size(self) -> int:
        n = 1
        for values in self.dimensions.values():
            n *= len(values)
        return n

    def configs(self) -> Iterator[Config]:
        """Every architecture, in grid order (last dimension fastest)."""
        names = list(self.dimensions)
        for combo in itertools.product(*self.dimensions.values()):
            yield dict(zip(names, combo))

    def key(self, config: Mapping[str, Any]) -> str:
        """Stable, human-readable id of one architecture, e.g. ``depth=3|width=128|...``."""
        missing = set(self.dimensions) - set(config)
        if missing:
            raise KeyError(f"config lacks dimensions {sorted(missing)} of space {self.name!r}")
        return "|".join(f"{d}={config[d]}" for d in self.dimensions)

    def parse(self, key: str) -> Config:
        """Inverse of :meth:`key` (values are matched against the declared ones, so types come back right)."""
        parts = dict(p.split("=", 1) for p in key.split("|"))
        config: Config = {}
        for dim, values in self.dimensions.items():
            text = parts.get(dim)
            match = [v for v in values if str(v) == text]
            if not match:
                raise ValueError(f"{key!r} is not an architecture of space {self.name!r} (dimension {dim!r})")
            config[dim] = match[0]
        return config

    def model_kwargs(self, config: Mapping[str, Any]) -> Config:
        """Constructor arguments of one architecture (searched values plus the fixed ones)."""
        return {**self.fixed, **{d: config[d] for d in self.dimensions}}
