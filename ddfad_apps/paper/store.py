"""Cell results on disk: one JSON per cell, written atomically, reused only when whole and made the same way.

A record holds the cell's settings, its result, its cost (wall time, peak memory) and the files it wrote.  It
is reused when it parses, names the same key and settings, has a result and its files exist; anything else (a
torn or hand-edited file, a missing set folder) is reported and the cell is computed again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ddfad_apps.jobs.files import write_json_atomic
from ddfad_apps.paper.cells import Cell

RAW_DIR = "raw"


class CellStore:
    """``raw/<key>.json`` per cell under ``out``; cells write their own files under :meth:`files`."""

    def __init__(self, out: Path, say: Callable[[str], None] = print) -> None:
        self.out = Path(out)
        self.raw = self.out / RAW_DIR
        self.say = say

    def path(self, cell: Cell) -> Path:
        return self.raw / f"{cell.key}.json"

    def files(self, cell: Cell) -> Path:
        """The folder a cell's own files go to (sets, job outputs, figures)."""
        return self.raw / cell.key

    def load(self, cell: Cell) -> dict[str, Any] | None:
        """The saved record of ``cell`` when it is complete and made with the same settings, else ``None``."""
        path = self.path(cell)
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self.say(f"{path}: damaged ({exc}); computing the cell again")
            return None
        problem = self._problem(cell, record)
        if problem:
            self.say(f"{path}: {problem}; computing the cell again")
            return None
        return record

    def _problem(self, cell: Cell, record: Any) -> str | None:
        if not isinstance(record, dict) or not isinstance(record.get("result"), dict):
            return "no result in it"
        if record.get("key") != cell.key or record.get("settings") != json.loads(json.dumps(cell.params)):
            return "made with other settings"
        missing = [f for f in record.get("outputs", []) if not (self.out / f).exists()]
        if missing:
            return f"its output(s) {', '.join(missing)} are missing"
        return None

    def save(self, cell: Cell, result: dict[str, Any], cost: dict[str, Any], machine: dict[str, Any],
             outputs: list[Path], inputs: dict[str, str | None] | None = None) -> dict[str, Any]:
        """Write the record; ``inputs`` holds the ``stamp`` of each record the cell read (see :func:`stale`)."""
        record = {"key": cell.key, "kind": cell.kind, "name": cell.name, "settings": cell.params,
                  "needs": list(cell.needs), "inputs": inputs or {}, "stamp": uuid.uuid4().hex, "result": result,
                  "cost": cost, "machine": machine, "outputs": [str(Path(p).relative_to(self.out)) for p in outputs]}
        write_json_atomic(self.path(cell), record)
        return json.loads(json.dumps(record))


def stale(record: dict[str, Any], needs: dict[str, dict[str, Any]]) -> list[str]:
    """The inputs of ``record`` whose records were made again since it read them (each save gets a new stamp),
    whichever run made them: a cell computed from an older set must be computed again."""
    return [key for key, need in needs.items() if record.get("inputs", {}).get(key) != need.get("stamp")]
