"""``import ddfad_apps`` sets the process-wide defaults its speed relies on, and leaves a user's own choice alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, os, resource
import ddfad_apps, torch
big = 64 * 2**20 // 4  # floats: a 64 MB tensor, above glibc's mmap threshold like a training step's activations
torch.ones(big)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    torch.ones(big)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"thp": os.environ.get("THP_MEM_ALLOC_ENABLE"), "omp": os.environ.get("OMP_WAIT_POLICY"),
                  "faults": faults}))
"""


def _child(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("THP_MEM_ALLOC_ENABLE", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", CHILD], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_huge_pages_by_default_and_a_users_setting_wins() -> None:
    default, chosen = _child(), _child(THP_MEM_ALLOC_ENABLE="0", OMP_WAIT_POLICY="ACTIVE")
    assert (default["thp"], default["omp"]) == ("1", "PASSIVE")
    assert (chosen["thp"], chosen["omp"]) == ("0", "ACTIVE")
    # four fresh 64 MB tensors: 4 x 16384 faults in 4 KiB pages; with 2 MiB pages a few hundred
    assert chosen["faults"] > 4 * 16_000
    mode = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    if "[never]" not in mode:  # the kernel grants huge pages on request (madvise) or always
        assert default["faults"] < chosen["faults"] / 8


def test_importing_the_strategies_says_nothing_of_avalanches_unused_qp_solvers() -> None:
    """Avalanche's GEM import warns that no QP solver is installed; this toolkit never runs GEM, so the warning is
    filtered at ``import ddfad_apps``, and only it: a warning of the same kind from elsewhere still shows."""
    child = ("import warnings\nimport strategies\n"
             "warnings.warn('no QP solver found (not from qpsolvers)', UserWarning)\n")
    err = subprocess.run([sys.executable, "-W", "always", "-c", child], capture_output=True, text=True,
                         check=True).stderr
    assert "qpsolvers/solvers" not in err and "not from qpsolvers" in err
