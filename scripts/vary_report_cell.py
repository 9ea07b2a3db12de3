"""Make one Table I set cell of the paper report again with changed method or expert settings, and pair it with
the report's own cell (same protocol, set seeds and evaluation seeds).

    python scripts/vary_report_cell.py --dataset ravdess --method mtt --cpc 10 --experts num_experts:8 --out DIR
    python scripts/vary_report_cell.py --dataset ravdess --method mtt --cpc 10 --settings max_start_epoch:20 --out DIR
    python scripts/vary_report_cell.py --dataset ravdess --cpc 10 --again --set-seeds 3 --out DIR2 --against DIR/<key>.json
    python scripts/vary_report_cell.py --dataset ravdess --cpc 10 --settings init:dm --set-seeds 10 --out DIR --against DIR2/<key>.json
    python scripts/vary_report_cell.py --dataset ravdess --cpc 10 --again --first-set-seed 5 --set-seeds 5 --out DIR3

Why: a lever for a method ("more experts", "start later on the trajectories") is only worth adopting if it moves
the very cell the report measures, paired by set seed; this is how docs/evidence/ravdess_cpc10_*.txt were made.
The cell is computed under ``DIR`` (never in the report's folder), resumably and unit by unit: the same command
started twice splits the sets and evaluations between the two processes (one thread each on 2 cores).  The
report's cell may come from another machine (its CPU is recorded): the comparison then carries that too, and
``--again`` makes the report's own settings here, as a same-machine baseline to pair a change with (``--against``).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]


def per_seed_lines(result: dict) -> list[str]:
    """One line per set seed: test accuracy (networks), the lr the protocol chose and the validation scores."""
    ev = result["evaluations"]["convnet"]
    lines = []
    for seed, run in sorted(ev["runs"].items(), key=lambda kv: int(kv[0])):
        nets = ", ".join(f"{100 * a:.2f}" for a in run["accuracies"])
        val = ", ".join(f"{k}: {100 * v:.2f}" for k, v in run["val_scores"].items())
        lines.append(f"  set seed {seed}: test {100 * run['mean']:.2f} (networks {nets}); lr {run['lr']:.4f} "
                     f"({run['lr_source']}); validation {{{val}}}")
    return lines


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--method", default="mtt")
    ap.add_argument("--cpc", type=int, required=True)
    ap.add_argument("--settings", default=None, help="method settings changes, FIELD:VALUE,...")
    ap.add_argument("--experts", default=None, help="MTT expert settings changes, FIELD:VALUE,...")
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "paper", help="the report folder")
    ap.add_argument("--out", type=Path, required=True, help="where the changed cell is computed")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--again", action="store_true",
                    help="no change: the report's cell made again here (a same-machine baseline for other changes)")
    ap.add_argument("--against", type=Path, default=None,
                    help="pair with this saved cell (another run's DIR/<key>.json) instead of the report's")
    ap.add_argument("--set-seeds", type=int, default=None,
                    help="set seeds 0..N-1 (default: the report cell's); paired on the seeds both cells have, so "
                         "seeds beyond the report's pair only --against a cell that has them")
    ap.add_argument("--first-set-seed", type=int, default=0,
                    help="make set seeds K..K+N-1 instead of 0..N-1: a later block of seeds for a cell made "
                         "before (pair it --against the same block of the other cell)")
    args = ap.parse_args(argv)
    if not (args.settings or args.experts or args.again):
        raise SystemExit("nothing to vary: give --settings and/or --experts (or --again)")
    if args.against is not None and not args.against.is_file():  # before the hour of work, not after it
        raise SystemExit(f"--against {args.against}: no such saved cell")

    import torch

    from ddfad_apps.distill.presets import parse_overrides
    from ddfad_apps.jobs.data import open_device
    from ddfad_apps.evidence import paired_difference, summarize, verdict
    from ddfad_apps.jobs.files import write_json_atomic
    from ddfad_apps.paper.cells import SIZES, declare, find_set, set_cell
    from ddfad_apps.paper.execute import Context, join_set, run_set
    from ddfad_apps.storage.locks import FileLock, lock_path, locked

    torch.set_num_threads(args.threads)
    size = SIZES["extended"]  # the committed cells (the default size's are among them)
    reference = find_set(declare(size), args.dataset, args.method, args.cpc)
    record = args.report / "raw" / f"{reference.key}.json" if reference else None
    if record is None or not record.exists():
        raise SystemExit(f"the report has no Table I cell for {args.dataset} {args.method} CPC {args.cpc}")
    changes = parse_overrides(args.settings) if args.settings else {}
    expert_changes = parse_overrides(args.experts) if args.experts else {}
    varied = replace(size, method_overrides={**size.method_overrides,
                                             args.method: {**size.method_overrides.get(args.method, {}), **changes}},
                     expert_overrides={**size.expert_overrides, **expert_changes})
    report_seeds = reference.params["set_seeds"]
    if args.set_seeds is not None and args.set_seeds < 2:
        raise SystemExit(f"--set-seeds {args.set_seeds}: pairing needs at least 2")
    if args.first_set_seed < 0:
        raise SystemExit(f"--first-set-seed {args.first_set_seed}: set seeds start at 0")
    cell = set_cell(varied, args.dataset, args.method, args.cpc, set_seeds=args.set_seeds or report_seeds,
                    first_set_seed=args.first_set_seed)
    if cell.key == reference.key and not args.again:  # (a later block of seeds is another key)
        raise SystemExit("these changes leave the cell as the report's: nothing to compare")
    ctx = Context(args.out / "raw", open_device("auto"), args.data_root, say=print)
    ctx.raw.mkdir(parents=True, exist_ok=True)
    saved = args.out / f"{cell.key}.json"
    lock = FileLock(lock_path(saved), remove_on_release=True)
    if not saved.exists():
        if lock.acquire(blocking=False):
            try:
                result, _ = run_set(cell, ctx)
                write_json_atomic(saved, {"changes": {"settings": changes, "experts": expert_changes},
                                          "result": result})
            finally:
                lock.release()
        else:  # another run holds the cell: share its units, then wait for its result
            join_set(cell, ctx)
            with locked(saved, on_wait=print, remove_on_release=True):
                pass
    new = json.loads(saved.read_text())["result"]
    old = json.loads((args.against or record).read_text())["result"]
    label = ", ".join(f"{k} {v}" for k, v in {**changes, **expert_changes}.items()) or "made again"
    base = f"the cell in {args.against}" if args.against else "the report"
    print(f"\n{args.dataset} CPC {args.cpc} {args.method}: {base} against {label}")
    for name, res in ((base, old), (label, new)):
        ev = res["evaluations"]["convnet"]
        print(f"{name}\n" + "\n".join(per_seed_lines(res)))
        print(f"  mean {summarize(list(ev['per_set_seed'].values())).format()}"
              + (f"; experts {', '.join(f'{100 * a:.2f}' for a in res['experts_test_accuracy'][0])}"
                 if res.get("experts_test_accuracy") else ""))
    a = {int(s): v for s, v in new["evaluations"]["convnet"]["per_set_seed"].items()}
    b = {int(s): v for s, v in old["evaluations"]["convnet"]["per_set_seed"].items()}
    seeds = sorted(set(a) & set(b))  # a cell made with --set-seeds N pairs on its N seeds only
    if len(seeds) < 2:  # e.g. a later block of seeds, made to be paired --against another cell's same block
        print(f"set seeds {sorted(a)} and {sorted(b)}: fewer than 2 in common, not paired; the cell is saved as "
              f"{saved} (pair another cell --against it)")
        return
    print(f"paired on set seeds {', '.join(map(str, seeds))}: "
          + verdict(label, base, paired_difference([a[s] for s in seeds], [b[s] for s in seeds])))


if __name__ == "__main__":
    main()
