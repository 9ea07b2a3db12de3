"""Neural-architecture search spaces, declared as data (one module per space).

Adding a space = adding a module that defines ``SPACE = SearchSpace(...)`` and naming it in ``_MODULES``;
spaces are imported lazily so a broken one cannot take the others down.
"""

from __future__ import annotations

import importlib

from search_spaces.base import Config, SearchSpace

# space name -> module defining SPACE
_MODULES: dict[str, str] = {
    "convnet720": "search_spaces.convnet720",
}
SPACE_NAMES: tuple[str, ...] = tuple(_MODULES)


def get_space(name: str) -> SearchSpace:
    """The registered space called ``name``."""
    if name not in _MODULES:
        raise ValueError(f"unknown search space {name!r}; registered: {', '.join(SPACE_NAMES)}")
    space = importlib.import_module(_MODULES[name]).SPACE
    if space.name != name:
        raise ValueError(f"module {_MODULES[name]} declares space {space.name!r}, registered as {name!r}")
    return space


__all__ = ["Config", "SPACE_NAMES", "SearchSpace", "get_space"]
