"""The output folder of one distillation run: what it was asked to do, and how far it got.

``run.json`` is written first and names the request (data set, method, CPC, model, preset, seed, settings).
A folder whose ``run.json`` names another request is refused (unless forced), so a typo in ``--out`` can
never overwrite an earlier result; a folder with the same request resumes from its checkpoint, and one that
already holds ``distilled.json`` (written last, see :class:`SyntheticSet`) is complete.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from ddfad_apps.distill.synthetic_set import META_FILE

RUN_FILE = "run.json"
CHECKPOINT_FILE = "checkpoint.pt"
State = Literal["new", "resume", "complete"]


class ForeignRunError(FileExistsError):
    """The output folder holds a different run (or other files)."""


def _jsonable(request: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(request, sort_keys=True, default=str))


def prepare_run_folder(out: str | Path, request: dict[str, Any], force: bool = False) -> State:
    """Make ``out`` ready for ``request``; returns whether the run is new, to be resumed, or already complete.

    ``force`` wipes a folder that holds another run (never a folder that is not a run of ours, with files).
    """
    out = Path(out)
    request = _jsonable(request)
    run_file = out / RUN_FILE
    if out.exists() and not out.is_dir():
        raise ForeignRunError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not run_file.exists():
            raise ForeignRunError(
                f"{out} is not empty and holds no {RUN_FILE}: it is not a ddfad-apps distillation folder; "
                "choose another --out"
            )
        previous = json.loads(run_file.read_text())
        if previous == request:
            return "complete" if (out / META_FILE).exists() else "resume"
        if not force:
            changed = sorted(k for k in set(previous) | set(request) if previous.get(k) != request.get(k))
            raise ForeignRunError(
                f"{out} holds a different run (differs in: {', '.join(changed)}); choose another --out, or pass "
                "--force to replace it"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{RUN_FILE}.tmp"
    tmp.write_text(json.dumps(request, indent=2, sort_keys=True))
    os.replace(tmp, run_file)
    return "new"


def read_request(out: str | Path) -> dict[str, Any]:
    """The request a run folder was made for (raises a clear error when ``out`` is not a run folder)."""
    run_file = Path(out) / RUN_FILE
    if not run_file.exists():
        raise FileNotFoundError(f"{out} is not a ddfad-apps distillation folder (no {RUN_FILE})")
    return json.loads(run_file.read_text())
