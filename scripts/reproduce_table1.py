"""Reproduce the paper's Table I: test accuracy of networks trained on CPC clips per class, per method.

    python scripts/reproduce_table1.py                      # CPU subset: FSDD, 4 methods, CPC 1/10, ConvNet
    python scripts/reproduce_table1.py --full --device cuda # everything, paper preset: meant for a GPU

Rows are (data set, method), columns (architecture, CPC); cells "mean +- std" over ``--seeds`` networks.
Each cell is saved as JSON in ``--out`` as soon as it is done, so an interrupted run resumes where it
stopped, and the markdown table (``--out/table1.md``) is rewritten after every cell.  A set is distilled once
per (data set, method, CPC) with a ConvNet and evaluated on every architecture (cross-architecture, as in
the paper).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FULL = {"datasets": "fsdd,ravdess,urbansound8k", "methods": "random,herding,dc,dsa,dm,mtt", "cpc": "1,10,50",
        "models": "convnet,resnet18,vgg11", "preset": "paper", "seeds": 5}
SUBSET = {"datasets": "fsdd", "methods": "random,herding,dm,mtt", "cpc": "1,10", "models": "convnet",
          "preset": "fast", "seeds": 2}


def table(cells: dict[str, dict], datasets: list[str], methods: list[str], cpcs: list[int],
          models: list[str]) -> str:
    header = "| data set | method | " + " | ".join(f"{m} CPC {c}" for m in models for c in cpcs) + " |"
    lines = [header, "|" + "---|" * (2 + len(models) * len(cpcs))]
    for d in datasets:
        for meth in methods:
            row = []
            for m in models:
                for c in cpcs:
                    cell = cells.get(f"{d}-{meth}-{c}-{m}")
                    row.append(f"{100 * cell['mean']:.2f} +- {100 * cell['std']:.2f}" if cell else "")
            lines.append(f"| {d} | {meth} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="all data sets, methods, CPCs, architectures; paper preset")
    for key in SUBSET:
        ap.add_argument(f"--{key}", default=None)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", type=Path, default=Path("runs/table1"))
    args = ap.parse_args()
    base = FULL if args.full else SUBSET
    conf = {k: (getattr(args, k) if getattr(args, k) is not None else v) for k, v in base.items()}

    from tqdm.auto import tqdm

    from ddfad_apps.distill import NotEnoughClipsError, distill
    from ddfad_apps.distill.evaluate import evaluate_models
    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.training.device import resolve_device

    datasets = conf["datasets"].split(",")
    methods = conf["methods"].split(",")
    cpcs = [int(c) for c in str(conf["cpc"]).split(",")]
    models = conf["models"].split(",")
    device = resolve_device(args.device)
    args.out.mkdir(parents=True, exist_ok=True)
    cells: dict[str, dict] = {}
    for path in args.out.glob("*.json"):
        cells[path.stem] = json.loads(path.read_text())
    jobs = [(d, meth, c) for d in datasets for meth in methods for c in cpcs]
    for d, meth, c in tqdm(jobs, desc="table I"):
        todo = [m for m in models if f"{d}-{meth}-{c}-{m}" not in cells]
        if not todo:
            continue
        try:
            splits = load_features(d, data_root=args.data_root, progress=False)
            syn = distill(splits.train, c, meth, conf["preset"], device=device, progress=False,
                          stats=splits.stats)
        except (FileNotFoundError, NotEnoughClipsError) as exc:
            tqdm.write(f"skip {d} {meth} CPC {c}: {exc}")
            continue
        results = evaluate_models(syn, splits.test, todo, int(conf["seeds"]), conf["preset"], device, False)
        for m, r in results.items():
            key = f"{d}-{meth}-{c}-{m}"
            cells[key] = {"mean": r["mean"], "std": r["std"], "accuracies": r["accuracies"]}
            tmp = args.out / f".{key}.tmp"
            tmp.write_text(json.dumps(cells[key]))
            tmp.replace(args.out / f"{key}.json")
        (args.out / "table1.md").write_text(table(cells, datasets, methods, cpcs, models))
    print(table(cells, datasets, methods, cpcs, models))
    print(f"written to {args.out / 'table1.md'}")


if __name__ == "__main__":
    main()
