"""The package layout's promises: one-way dependencies, registries as the one source of each fact, and user
extension points (search spaces) that work without editing the package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the documented places where the engine reaches the plug-in packages (README "Layout")
PLUG_IN_POINTS = {"strategies": ("ddfad_apps/continual/", "ddfad_apps/jobs/cicl.py"),
                  "search_spaces": ("ddfad_apps/nas/",)}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_engine_reaches_plug_in_packages_only_at_documented_points() -> None:
    offenders = []
    for path in sorted((REPO / "ddfad_apps").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        for name in _imports(path):
            top = name.split(".")[0]
            if top in PLUG_IN_POINTS and not rel.startswith(PLUG_IN_POINTS[top]):
                offenders.append(f"{rel} imports {name}")
    assert not offenders, offenders


def test_strategies_depend_on_the_engine_not_on_its_applications() -> None:
    offenders = [f"{p.relative_to(REPO)} imports {n}" for p in sorted((REPO / "strategies").glob("*.py"))
                 for n in _imports(p) if n.startswith(("ddfad_apps.continual", "ddfad_apps.jobs", "ddfad_apps.cli"))]
    assert not offenders, offenders


def test_user_search_space_registers_and_resolves_by_name_or_reference() -> None:
    import search_spaces
    from search_spaces import SearchSpace, get_space, register_space

    space = SearchSpace("tiny-test", "convnet", {"depth": (1, 2), "width": (8, 16)})
    try:
        assert register_space(space) is space and get_space("tiny-test") is space
        assert "tiny-test" in search_spaces.space_names()
        with pytest.raises(ValueError, match="already registered"):
            register_space(SearchSpace("tiny-test", "convnet", {"depth": (3,)}))
        with pytest.raises(ValueError, match="built-in"):
            register_space(SearchSpace("convnet720", "convnet", {"depth": (3,)}), replace=True)
    finally:
        search_spaces._REGISTERED.pop("tiny-test", None)
    assert get_space("search_spaces.convnet720:SPACE") is get_space("convnet720")
    with pytest.raises(ValueError, match="unknown search space 'nope'"):
        get_space("nope")
    with pytest.raises(ValueError, match="cannot load search space"):
        get_space("search_spaces.convnet720:MISSING")
