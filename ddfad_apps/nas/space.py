"""Bridge from a declared :class:`~search_spaces.SearchSpace` to Optuna and to models.

A study searches either the whole product space (one categorical parameter per dimension, so TPE can model
each dimension) or an explicit list of architectures such as a stratified sample (one categorical ``arch``
parameter over their keys, because a sample is no product).  :func:`grid`, :func:`distributions`,
:func:`suggest` and :func:`queue_params` all derive from that one choice.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import optuna
from torch import nn

from ddfad_apps.models import build_model
from ddfad_apps.models.layers import _ALIASES
from search_spaces import Config, SearchSpace, get_space

ARCH_PARAM = "arch"


def restrict(space: SearchSpace, values: Mapping[str, Sequence[Any]]) -> SearchSpace:
    """The sub-space keeping only ``values`` of some dimensions (e.g. narrow widths on a CPU).

    Its name records the restriction, so its studies never mix with the full space's.
    """
    if not values:
        return space
    dims = dict(space.dimensions)
    for dim, keep in values.items():
        keep = [_alias(k) for k in keep]
        if dim not in dims:
            raise ValueError(f"space {space.name!r} has no dimension {dim!r}; dimensions: {', '.join(dims)}")
        chosen = tuple(v for v in dims[dim] if str(v) in {str(k) for k in keep})
        unknown = {str(k) for k in keep} - {str(v) for v in dims[dim]}
        if unknown or not chosen:
            raise ValueError(f"{dim} values {sorted(unknown) or list(keep)} are not in space {space.name!r} "
                             f"(choices: {', '.join(map(str, dims[dim]))})")
        dims[dim] = chosen
    tag = ",".join(f"{d}={'+'.join(map(str, dims[d]))}" for d in values)
    return replace(space, name=f"{space.name}[{tag}]", dimensions=dims)


def _alias(value: Any) -> Any:
    """Short option names of the models (``max`` -> ``maxpooling``, ``batch`` -> ``batchnorm``)."""
    return _ALIASES.get(str(value).lower(), value)


def resolve_space(name: str, restriction: Mapping[str, Sequence[Any]] | None = None) -> SearchSpace:
    return restrict(get_space(name), restriction or {})


def stratified_sample(space: SearchSpace, n: int, seed: int = 0) -> list[Config]:
    """``n`` distinct architectures in which every value of every dimension occurs equally often (+-1).

    Each dimension gets a balanced, shuffled column of values and the columns are zipped (a Latin-hypercube
    design); collisions are repaired by swapping within a column, which keeps the balance.  ``n >= size``
    returns the whole space; larger samples are the complement of a smaller one.
    """
    if n < 1:
        raise ValueError(f"sample size must be >= 1, got {n}")
    if n >= space.size:
        return list(space.configs())
    if 2 * n > space.size:  # the complement of a balanced sample of a full grid is balanced too
        drop = {space.key(c) for c in stratified_sample(space, space.size - n, seed)}
        return [c for c in space.configs() if space.key(c) not in drop]
    rng = random.Random(seed)
    names = list(space.dimensions)
    columns = []
    for dim in names:
        values = list(space.dimensions[dim])
        rng.shuffle(values)  # which values get the extra slot is random too
        column = [values[i % len(values)] for i in range(n)]
        rng.shuffle(column)
        columns.append(column)
    for _ in range(100 * n):
        rows = [tuple(col[i] for col in columns) for i in range(n)]
        seen: dict[tuple, int] = {}
        dup = next((i for i, r in enumerate(rows) if r in seen or seen.setdefault(r, i) != i), None)
        if dup is None:
            return [dict(zip(names, r)) for r in rows]
        col = columns[rng.randrange(len(columns))]
        j = rng.randrange(n)
        col[dup], col[j] = col[j], col[dup]
    raise RuntimeError(f"could not draw {n} distinct balanced architectures from {space.name!r}")


def grid(space: SearchSpace, archs: Sequence[str] | None = None) -> dict[str, list[Any]]:
    """Search space for :class:`optuna.samplers.GridSampler`."""
    if archs is not None:
        return {ARCH_PARAM: list(archs)}
    return {dim: list(values) for dim, values in space.dimensions.items()}


def distributions(space: SearchSpace, archs: Sequence[str] | None = None
                  ) -> dict[str, optuna.distributions.CategoricalDistribution]:
    return {name: optuna.distributions.CategoricalDistribution(values) for name, values in grid(space, archs).items()}


def suggest(trial: optuna.Trial, space: SearchSpace, archs: Sequence[str] | None = None) -> Config:
    """Ask the trial for one architecture (its config, decoded from ``arch`` when searching a list)."""
    if archs is not None:
        return space.parse(trial.suggest_categorical(ARCH_PARAM, list(archs)))
    return {dim: trial.suggest_categorical(dim, list(values)) for dim, values in space.dimensions.items()}


def queue_params(space: SearchSpace, config: Config, archs: Sequence[str] | None = None) -> dict[str, Any]:
    """The params that make a queued trial evaluate ``config``."""
    return {ARCH_PARAM: space.key(config)} if archs is not None else {d: config[d] for d in space.dimensions}


def build(space: SearchSpace, config: Config, num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
    """The model of one architecture; ValueError when it cannot process ``input_shape``."""
    return build_model(space.model, num_classes, input_shape, **space.model_kwargs(config))


def key_of_params(space: SearchSpace, params: Mapping[str, Any]) -> str:
    """Architecture key of a trial's (or queued trial's) params, in either encoding."""
    return str(params[ARCH_PARAM]) if ARCH_PARAM in params else space.key(params)
