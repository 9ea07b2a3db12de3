"""Wall time and peak memory of ``ddfad-apps cicl`` (fast preset, one seed, all three memories).

Runs the command as a child process into a fresh ``--out`` folder (so nothing is skipped) and a throw-away
MLflow store, then prints the wall time and the peak resident memory of the child (``resource.getrusage``
``RUSAGE_CHILDREN`` ``ru_maxrss``: the largest child, here the command itself).  The machine's CPU may be
shared with other work: repeat and compare on a quiet machine before trusting small differences.

    python scripts/bench_cicl.py --dataset fsdd
    python scripts/bench_cicl.py --dataset ravdess -- --distill-method dm
    python scripts/bench_cicl.py --dataset fsdd --seeds 3 --out runs/cicl-sweep -- --mem-per-class 1,2,5,20

With ``--out`` the folder is kept, so an interrupted sweep resumes (each finished run is skipped) when the same
command is run again.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="fsdd")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--memory", default="distilled,herding,random")
    p.add_argument("--out", default=None, help="results folder (default: a temporary one)")
    p.add_argument("extra", nargs="*", help="more options for `ddfad-apps cicl` (after --)")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-cicl-") as tmp:
        out = Path(args.out) if args.out else Path(tmp) / "out"
        cmd = [sys.executable, "-m", "ddfad_apps.cli.main", "cicl", "--dataset", args.dataset, "--preset", "fast",
               "--seeds", str(args.seeds), "--memory", args.memory, "--out", str(out),
               "--tracking-uri", f"sqlite:///{Path(tmp) / 'mlflow.db'}", "--no-progress", *args.extra]
        print("$", " ".join(cmd), flush=True)
        start = time.perf_counter()
        rc = subprocess.run(cmd, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}).returncode
        wall = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux
    print(f"\nbench_cicl: dataset {args.dataset}, {args.seeds} seed(s), memories {args.memory}: "
          f"wall {wall / 60:.1f} min ({wall:.0f} s), peak memory {peak_mb:.0f} MB, exit code {rc}; "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f} (shared CPUs make times noisy)")
    sys.exit(rc)


if __name__ == "__main__":
    main()
