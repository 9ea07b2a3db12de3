"""Neural-architecture search spaces, declared as data (one module per space), and the registry that names them.

A built-in space is a module defining ``SPACE = SearchSpace(...)`` named in ``_MODULES``; spaces are imported
lazily so a broken one cannot take the others down.  A user adds a space without editing this package:

* ``register_space(SearchSpace("mine", {...}))`` in the process that runs the search, or
* a ``"package.module:ATTRIBUTE"`` reference wherever a space name is taken (``ddfad-apps nas --space``):
  it is importable from every worker process and machine, which an in-process registration is not.
"""

from __future__ import annotations

import importlib

from search_spaces.base import Config, SearchSpace

# space name -> module defining SPACE
_MODULES: dict[str, str] = {
    "convnet720": "search_spaces.convnet720",
}
_REGISTERED: dict[str, SearchSpace] = {}


def register_space(space: SearchSpace, *, replace: bool = False) -> SearchSpace:
    """Make ``space`` known by its name in this process; a name already taken is refused unless ``replace``."""
    if not isinstance(space, SearchSpace):
        raise TypeError(f"register_space takes a SearchSpace, got {type(space).__name__}")
    if not replace and (space.name in _MODULES or space.name in _REGISTERED):
        raise ValueError(f"a search space named {space.name!r} is already registered; pass replace=True to "
                         "replace a space registered with register_space")
    if space.name in _MODULES:
        raise ValueError(f"{space.name!r} is a built-in search space and cannot be replaced")
    _REGISTERED[space.name] = space
    return space


def space_names() -> tuple[str, ...]:
    """Built-in and registered spaces, built-in first."""
    return (*_MODULES, *_REGISTERED)


def _import_reference(ref: str) -> SearchSpace:
    module, _, attr = ref.partition(":")
    try:
        space = getattr(importlib.import_module(module), attr or "SPACE")
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load search space {ref!r}: {exc}") from exc
    if not isinstance(space, SearchSpace):
        raise ValueError(f"{ref!r} is a {type(space).__name__}, not a SearchSpace")
    return space


def get_space(name: str) -> SearchSpace:
    """The space called ``name``: built-in, registered with :func:`register_space`, or ``"module:ATTRIBUTE"``."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _MODULES:
        space = importlib.import_module(_MODULES[name]).SPACE
        if space.name != name:
            raise ValueError(f"module {_MODULES[name]} declares space {space.name!r}, registered as {name!r}")
        return space
    if ":" in name:
        return _import_reference(name)
    raise ValueError(f"unknown search space {name!r}; registered: {', '.join(space_names())} "
                     "(or give 'package.module:ATTRIBUTE')")


__all__ = ["Config", "SearchSpace", "get_space", "register_space", "space_names"]
