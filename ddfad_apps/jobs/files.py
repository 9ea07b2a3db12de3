"""Result files written whole or not at all (see :mod:`ddfad_apps.storage.atomic`): a reader never sees half a
file, and two writers never mix theirs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ddfad_apps.storage.atomic import atomic_write


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a private temporary file and an atomic rename."""
    atomic_write(path, lambda tmp: tmp.write_text(text))
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """:func:`write_text_atomic` of ``obj`` as indented JSON."""
    return write_text_atomic(path, json.dumps(obj, indent=2))
