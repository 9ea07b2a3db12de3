"""The command line of ``scripts/reproduce_paper.py`` (the script only calls :func:`main`)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

USAGE = """Reproduce the DDFAD paper's tables and figures in one resumable run: REPORT.md, PNG figures, raw JSON.

    python scripts/reproduce_paper.py --smoke --out /tmp/paper   # tiny settings, a few minutes: the whole path
    python scripts/reproduce_paper.py                            # the CPU subset (a few hours on 2 cores)
    python scripts/reproduce_paper.py --extended                 # + DC, DSA, MTT's random start, whole splits
    python scripts/reproduce_paper.py --full --device cuda       # the paper's preset, meant for a GPU

The default and extended sizes write docs/paper/REPORT.md and REPORT-extended.md from one folder of cells.  Each
cell's result is saved as soon as it is done (docs/paper/raw/<cell>.json) and reused by the next run with the
same settings, so an interrupted run resumes (inside a cell, at its first missing set or evaluation); a damaged
cell file is computed again.  The cells run in --workers processes of one thread each (default: one per core);
runs started into the same folder split the cells too.  --report-only writes the report from the cells done so
far.
"""


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=USAGE, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--smoke", action="store_true", help="tiny settings (minutes on 2 cores; run by the tests)")
    size.add_argument("--extended", action="store_true", help="the default plus DC and DSA, MTT from random clips "
                      "and the whole training splits (the committed report)")
    size.add_argument("--full", action="store_true", help="the paper's preset and grids (meant for a GPU)")
    ap.add_argument("--out", type=Path, default=Path("docs/paper"), help="report folder (default docs/paper)")
    ap.add_argument("--data-root", type=Path, default=None, help="folder of the data sets (else $DDFAD_DATA, "
                    "then the cache)")
    ap.add_argument("--datasets", default=None, help="restrict Table I to these data sets (comma list)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None, help="torch threads per process (default: 1 with "
                    "several workers, else torch's)")
    ap.add_argument("--workers", type=int, default=None, help="processes splitting the cells (default: one per "
                    "core on the CPU, at most 8; one on a GPU)")
    ap.add_argument("--tracking-uri", default=None, help="MLflow store of the cicl and nas jobs")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--report-only", action="store_true", help="run nothing: write REPORT.md from the cells saved "
                    "so far (it names the cells it lacks)")
    return ap


def main(argv: Sequence[str] | None = None):
    """Parse ``argv``, run :func:`~ddfad_apps.paper.run.reproduce`, print where the report went."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    import torch

    from ddfad_apps.paper.run import ReproduceError, default_workers, reproduce

    workers = 1 if args.report_only else args.workers if args.workers is not None else default_workers(args.device)
    if args.threads or workers > 1:
        torch.set_num_threads(args.threads or 1)
    size = "smoke" if args.smoke else "extended" if args.extended else "full" if args.full else "default"
    # the command that makes the cells: the report names it (a --report-only run makes nothing, so it is left out)
    command = shlex.join(["python", "scripts/reproduce_paper.py", *(a for a in argv if a != "--report-only")])
    datasets = tuple(d.strip() for d in args.datasets.split(",") if d.strip()) if args.datasets else None
    print(f"command: {command}", flush=True)
    try:
        done = reproduce(size, args.out, args.data_root, args.device, args.tracking_uri, datasets, command,
                         progress=not args.quiet, run=not args.report_only, workers=workers)
    except ReproduceError as exc:
        sys.exit(f"error: {exc}")
    split = "" if len(done.ran_by) < 2 else " (" + ", ".join(f"{k}: {len(v)}" for k, v in done.ran_by.items()) + ")"
    print(f"{len(done.ran)} cell(s) computed{split}, {len(done.skipped)} reused; report: {done.report}")
    return done
