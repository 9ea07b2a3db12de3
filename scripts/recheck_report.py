"""Re-check the paper report's Table I under another evaluation protocol, on the very sets the report made.

    python scripts/recheck_report.py --dataset ravdess --cpc 10 --change extend_edges:1 --out DIR

Why: a verdict ("MTT beats herding") should not hinge on a detail of the protocol (its lr grid, its selection
epochs).  Each Table I set of the report (``docs/paper/raw``, the extended size) is evaluated again with the
report's protocol plus ``--change`` (same carve, same evaluation seeds), and every method's mean and the paired
verdicts are printed under both protocols.  One unit per (method, set seed) under ``DIR``, in a folder named by
the changes: a killed run resumes, and the same command started twice splits the sets between the two processes
(one thread each on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--cpc", type=int, required=True)
    ap.add_argument("--methods", default=None, help="comma list (default: Table I's)")
    ap.add_argument("--change", default="extend_edges:1", help="EvalProtocol changes, FIELD:VALUE,...")
    ap.add_argument("--report", type=Path, default=ROOT / "docs" / "paper", help="the report folder")
    ap.add_argument("--out", type=Path, required=True, help="where the new evaluations are kept")
    ap.add_argument("--data-root", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import torch

    from ddfad_apps.distill.fingerprint import settings_digest
    from ddfad_apps.distill.presets import parse_overrides
    from ddfad_apps.distill.synthetic_set import SyntheticSet
    from ddfad_apps.evidence import eval_seeds_for, evaluate_set, paired_difference, summarize, verdict
    from ddfad_apps.evidence.protocol import SetEvaluation
    from ddfad_apps.jobs.files import write_json_atomic
    from ddfad_apps.paper.cells import SIZES, declare, find_set, set_seeds_of
    from ddfad_apps.paper.execute import Context, protocol_for, set_folder
    from ddfad_apps.storage.shared_work import Unit, run_units

    torch.set_num_threads(args.threads)
    size = SIZES["extended"]  # the committed cells (the default size's are among them)
    methods = args.methods.split(",") if args.methods else list(size.table1["methods"])
    changes = parse_overrides(args.change)
    ctx = Context(args.report / "raw", torch.device("cpu"), args.data_root)
    splits = ctx.splits(args.dataset)
    cells = declare(size)
    before: dict[str, dict[int, float]] = {}
    units: list[Unit] = []
    for method in methods:
        cell = find_set(cells, args.dataset, method, args.cpc)
        record = args.report / "raw" / f"{cell.key}.json" if cell else None
        if record is None or not record.exists():
            raise SystemExit(f"the report has no Table I cell for {args.dataset} {method} CPC {args.cpc}")
        old = json.loads(record.read_text())["result"]["evaluations"]["convnet"]
        before[method] = {int(s): a for s, a in old["per_set_seed"].items()}
        protocol = protocol_for(cell.params, "convnet").with_changes(**changes)
        carved = protocol.carve(splits.train)
        for seed in set_seeds_of(cell.params):
            def evaluate(cell=cell, seed=seed, protocol=protocol, carved=carved, method=method):
                syn = SyntheticSet.load(set_folder(ctx, cell.key, seed))
                return evaluate_set(syn, carved, splits.test, protocol,
                                    eval_seeds_for(seed, cell.params["eval_seeds"]), name=method)

            # the folder names the changes: a run with other changes never reads these evaluations
            folder = args.out / f"{args.dataset}-cpc{args.cpc}-{settings_digest(changes)[:8]}" / f"{method}-s{seed}"
            units.append(Unit(folder, evaluate,
                              lambda ev, folder: write_json_atomic(folder / "evaluation.json", ev.as_dict()),
                              lambda folder: SetEvaluation.from_dict(json.loads((folder / "evaluation.json")
                                                                                .read_text())),
                              f"{method} set seed {seed}"))
    results = run_units(units, say=print)
    after: dict[str, dict[int, float]] = {}
    for unit, ev in zip(units, results):
        method, seed = unit.folder.name.rsplit("-s", 1)
        after.setdefault(method, {})[int(seed)] = ev.summary.mean
        print(f"{method} s{seed}: {ev}")
    print(f"\n{args.dataset} CPC {args.cpc}, report protocol vs + {changes} (mean +- std [95% CI] over set seeds, %):")
    for method in methods:
        print(f"  {method:8s} {summarize(list(before[method].values())).format()}  ->  "
              f"{summarize(list(after[method].values())).format()}")
    for i, a in enumerate(methods):
        for b in methods[i + 1:]:
            seeds = sorted(after[a])
            for label, table in (("report", before), ("changed", after)):
                d = paired_difference([table[a][s] for s in seeds], [table[b][s] for s in seeds])
                print(f"  {label:8s} {verdict(a, b, d)}")


if __name__ == "__main__":
    main()
