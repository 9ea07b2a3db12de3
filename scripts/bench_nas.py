"""The NAS evidence of issue 14, resumable: FSDD and RAVDESS, one stratified sample of architectures (widths 32-128),
the ground truth at two budgets (does the ranking still move?), the proxies, the report against each budget, and the
anytime comparison.

    python scripts/bench_nas.py --out nas-bench                 # everything (prints the ETA first)
    python scripts/bench_nas.py --out nas-bench --eta-only      # the quick timing and the ETA, nothing else
    python scripts/bench_nas.py --report nas-out/report.json    # seconds per trial of a finished run

Every step writes its result under ``--out`` as it finishes and is skipped when that result is there; ground truths
go to the portable cache (``$DDFAD_CACHE/nas/truths``) one architecture at a time and proxy trials to the study's
journal, so a killed run resumes where it stopped.  The ETA comes from timing one epoch on an eighth of each
training set for three architectures (widths 32, 64, 128) on one thread.  Defaults are sized for ~2 cores:
ground truth 2 and 4 epochs (1 epoch made the 1-epoch early stopping *be* the ground truth: Spearman 1.000 on FSDD, and
left the best architecture at 94%), small proxies 5 epochs, the cheap early stopping (1 epoch); add the paper's 10-epoch
early stopping with ``--proxies distilled,random,herding,early-stopping,early-stopping-short`` (10 whole-data epochs
per architecture: the dearest proxy by far).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def from_report(path: str) -> None:
    report = json.loads(open(path).read())
    truth = report["trials"]["full"]
    for name, trials in report["trials"].items():
        if name == "full":
            continue
        archs = [a for a, r in trials.items() if a in truth and r["accuracy"] == r["accuracy"]]
        p = [trials[a]["seconds"] for a in archs]
        g = [truth[a]["seconds"] for a in archs]
        print(f"{name:<22} {len(archs):>3} archs: proxy {statistics.fmean(p):7.2f} s/trial, whole data "
              f"{statistics.fmean(g):7.2f} s/trial, speed-up {sum(g) / sum(p):5.1f}x")


def epoch_seconds(dataset: str, data_root: str | None, space, configs) -> tuple[float, int]:
    """Mean CPU seconds of one whole-data epoch per architecture (from an eighth of the data), and the clips."""
    import torch

    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.nas.space import build
    from ddfad_apps.training.loops import TrainConfig, train_model

    splits = load_features(dataset, data_root, progress=False)
    part = splits.train.subset(list(range(0, len(splits.train), 8)))
    probe = [next(c for c in configs if c["width"] == w) for w in (32, 64, 128)]
    train_model(build(space, probe[0], part.num_classes, part.input_shape), part, TrainConfig(epochs=1),
                progress=False)  # warm-up
    times = []
    for config in probe:
        torch.manual_seed(0)
        model = build(space, config, part.num_classes, part.input_shape)
        started = time.process_time()
        train_model(model, part, TrainConfig(epochs=1), progress=False)
        times.append(8 * (time.process_time() - started))
    return statistics.fmean(times), len(splits.train)


def eta(args, per_epoch: dict[str, tuple[float, int]]) -> float:
    """Estimated wall seconds of the whole bench on ``args.workers`` cores."""
    from ddfad_apps.nas.proxies import proxy_spec

    total = 0.0
    for dataset, (epoch, clips) in per_epoch.items():
        n = args.sample
        work = n * epoch * (args.truth_epochs + 2 * args.truth_epochs)  # ground truth at E and 2E
        for name in args.proxies.split(","):
            spec = proxy_spec(name)
            if spec.whole_data:
                work += n * epoch * spec.epochs
            else:
                classes = 10 if dataset == "fsdd" else 8
                work += n * epoch * (args.cpc * classes * args.proxy_epochs / clips)
        work += 300.0 * ("distilled" in args.proxies)  # MTT fast on the training set (measured ~480 s on FSDD)
        parallel = work / args.workers
        # anytime: one process; the first seed trains what it evaluates, later seeds mostly replay
        anytime = args.budget * (1 + len(args.anytime_proxies.split(","))) * (1 + 0.5 * (args.seeds - 1))
        total += parallel + anytime
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", default=None, help="report.json of a ddfad-apps nas run (no training)")
    ap.add_argument("--out", type=Path, default=Path("nas-bench"))
    ap.add_argument("--datasets", default="fsdd,ravdess")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--sample", type=int, default=48, help="stratified sample (same for every data set)")
    ap.add_argument("--widths", default="32,64,128")
    ap.add_argument("--truth-epochs", type=int, default=2, help="E: ground truth; the check trains 2E")
    ap.add_argument("--proxies", default="distilled,random,herding,early-stopping-short")
    ap.add_argument("--cpc", type=int, default=20)
    ap.add_argument("--proxy-epochs", type=int, default=5, help="epochs of the small proxies (registry: 30)")
    ap.add_argument("--anytime-proxies", default="random", help="proxies of proxy-grid/proxy-tpe")
    ap.add_argument("--budget", type=float, default=100.0, help="anytime CPU seconds per strategy and seed")
    ap.add_argument("--seeds", type=int, default=3, help="anytime search seeds")
    ap.add_argument("--target", type=float, default=0.99)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--eta-only", action="store_true")
    args = ap.parse_args()
    if args.report:
        from_report(args.report)
        return
    print("command:", shlex.join([sys.executable, *sys.argv]), flush=True)

    import torch

    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.jobs.nas import (
        NASAnytimeJob,
        NASSearchJob,
        run_nas_anytime_job,
        run_nas_job,
    )
    from ddfad_apps.nas.proxies import proxy_spec
    from ddfad_apps.nas.report import budget_convergence, format_convergence
    from ddfad_apps.nas.space import resolve_space, stratified_sample
    from ddfad_apps.nas.truths import TruthCache
    from ddfad_apps.storage.atomic import atomic_write

    torch.set_num_threads(1)
    restriction = {"width": args.widths.split(",")}
    space = resolve_space("convnet720", restriction)
    configs = stratified_sample(space, args.sample, args.seed)
    datasets = args.datasets.split(",")
    per_epoch = {d: epoch_seconds(d, args.data_root, space, configs) for d in datasets}
    for d, (s, clips) in per_epoch.items():
        print(f"{d}: {clips} training clips, ~{s:.1f} CPU s per whole-data epoch per architecture (mean of widths "
              f"32/64/128, one thread)")
    print(f"ETA ~{eta(args, per_epoch) / 60:.0f} min on {args.workers} cores (quick timing; a loaded machine is "
          "slower)", flush=True)
    if args.eta_only:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"command": shlex.join([sys.executable, *sys.argv]), "sample": [space.key(c) for c in configs]}
    for dataset in datasets:
        where = args.out / dataset
        common = dict(dataset=dataset, restriction=restriction, sample=args.sample, seed=args.seed,
                      data_root=args.data_root)
        journal = f"journal:{(where / 'report' / 'nas.journal').absolute()}"
        step = time.perf_counter()
        if not (where / "report" / "report.json").exists():
            run_nas_job(NASSearchJob(proxies=tuple(args.proxies.split(",")), truth_epochs=args.truth_epochs,
                                     cpc=args.cpc, epochs=args.proxy_epochs, workers=args.workers,
                                     out=where / "report", storage=journal, **common), progress=True)
        print((where / "report" / "report.txt").read_text(), f"({time.perf_counter() - step:.0f} s)", flush=True)
        # the proxies against the longer budget 2E, same sample, same workers: this trains the 2E ground truths
        # (cached one architecture at a time); the proxies' trials are reused from report/
        if not (where / "report2x" / "report.json").exists():
            run_nas_job(NASSearchJob(proxies=tuple(args.proxies.split(",")), truth_epochs=2 * args.truth_epochs,
                                     cpc=args.cpc, epochs=args.proxy_epochs, workers=args.workers,
                                     out=where / "report2x", storage=journal, **common), progress=True)
        print((where / "report2x" / "report.txt").read_text(), flush=True)
        splits = load_features(dataset, args.data_root, progress=False)
        truths = {e: TruthCache(dataset, splits.train, splits.test, proxy_spec("full", epochs=e, seed=args.seed))
                  .get_many(space, configs) for e in (args.truth_epochs, 2 * args.truth_epochs)}
        conv = budget_convergence(truths[args.truth_epochs], truths[2 * args.truth_epochs], seed=args.seed)
        line = format_convergence(conv, f"{args.truth_epochs} epochs", f"{2 * args.truth_epochs} epochs")
        print(f"{dataset}: {line}", flush=True)
        summary[dataset] = {"convergence": conv.as_dict(), "convergence_text": line}
        if not (where / "anytime" / "anytime.json").exists():
            run_nas_anytime_job(NASAnytimeJob(strategies=("proxy-grid", "proxy-tpe", "hyperband"),
                                              proxies=tuple(args.anytime_proxies.split(",")),
                                              budget_seconds=args.budget, seeds=args.seeds, target=args.target,
                                              truth_epochs=args.truth_epochs, cpc=args.cpc, epochs=args.proxy_epochs,
                                              out=where / "anytime", **common), progress=True)
        print((where / "anytime" / "anytime.txt").read_text(), flush=True)
        summary[dataset]["anytime"] = str(where / "anytime" / "anytime.json")
        atomic_write(args.out / "summary.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=1,
                                                                                        default=str)))
    print(f"done: {args.out}/summary.json; per data set report/, report2x/ (the proxies against the "
          "longer ground truth), anytime/")


if __name__ == "__main__":
    main()
