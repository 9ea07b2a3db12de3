"""Seconds per NAS trial on a proxy and on the whole training set, and the speed-up of searching on the proxy.

    python scripts/bench_nas.py --proxy distilled --archs 4 --restrict width=32,64
    python scripts/bench_nas.py --report nas-out/report.json      # from a finished ``ddfad-apps nas`` run

The first form trains a stratified sample of architectures with both recipes right here (one thread, as a
NAS worker does), using the cached proxy set (made first if missing: MTT takes minutes).  The second reads the
per-trial seconds every ``ddfad-apps nas`` run records.  The speed-up counts training only; making the proxy
set is a one-off cost printed separately.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

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
        print(f"{name:<15} {len(archs):>3} archs: proxy {statistics.fmean(p):7.2f} s/trial, whole data "
              f"{statistics.fmean(g):7.2f} s/trial, speed-up {sum(g) / sum(p):5.1f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--report", default=None, help="report.json of a ddfad-apps nas run (no training)")
    ap.add_argument("--proxy", default="distilled")
    ap.add_argument("--dataset", default="fsdd")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--archs", type=int, default=4, help="stratified sample size")
    ap.add_argument("--restrict", action="append", default=[], metavar="DIM=V1,V2")
    ap.add_argument("--epochs", type=int, default=None, help="proxy epochs (default: the proxy's)")
    ap.add_argument("--truth-epochs", type=int, default=None, help="whole-data epochs (default: the ground truth's)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.report:
        from_report(args.report)
        return

    import torch

    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.nas.job import NASJob
    from ddfad_apps.nas.objective import Objective
    from ddfad_apps.nas.proxies import proxy_spec, proxy_train_set
    from ddfad_apps.nas.space import build, resolve_space, stratified_sample

    torch.set_num_threads(1)
    restriction = {d: v.split(",") for d, v in (r.split("=", 1) for r in args.restrict)}
    space = resolve_space("convnet720", restriction)
    configs = stratified_sample(space, args.archs, args.seed)
    splits = load_features(args.dataset, args.data_root, progress=False)
    rows = {}
    for name, spec in (("proxy", proxy_spec(args.proxy, epochs=args.epochs, seed=args.seed)),
                       ("whole", proxy_spec("full", epochs=args.truth_epochs, seed=args.seed))):
        t0 = time.perf_counter()
        train, lr, info = proxy_train_set(spec, splits.train)
        job = NASJob(storage="journal:unused", study="bench", dataset=args.dataset, proxy=spec,
                     restriction=restriction, seed=args.seed)
        objective = Objective(job, train, splits.test, lr)
        print(f"{name}: {spec.name}, {info['clips']} clips x {spec.epochs} epochs (set ready in "
              f"{time.perf_counter() - t0:.1f}s; made once in {info['make_seconds']:.0f}s)")
        rows[name] = []
        for config in configs:
            t = time.perf_counter()
            torch.manual_seed(args.seed)
            acc = objective._train(build(space, config, train.num_classes, train.input_shape), config)
            rows[name].append(time.perf_counter() - t)
            print(f"  {space.key(config):<70} {rows[name][-1]:7.2f}s  acc {acc:.3f}")
    p, g = statistics.fmean(rows["proxy"]), statistics.fmean(rows["whole"])
    print(f"seconds per trial: proxy {p:.2f}, whole data {g:.2f}; speed-up {g / p:.1f}x")


if __name__ == "__main__":
    main()
