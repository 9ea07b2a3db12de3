"""Wall time and peak memory of the whole distillation pipeline: features, experts, distillation, evaluation.

    python scripts/bench_distill.py --dataset fsdd --method mtt --cpc 10 --preset fast

Each stage is timed separately; peak memory is the process's maximum resident set (``ru_maxrss``), which
includes everything the stages allocated.  Experts and features are cached on disk by design, so the first
run pays for them and later runs do not: pass ``--fresh-cache`` to measure the cold pipeline (a temporary
cache folder).  A baseline (random real clips by default) is evaluated in the same run for comparison.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fsdd")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--method", default="mtt")
    ap.add_argument("--cpc", type=int, default=10)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--seeds", type=int, default=3, help="evaluation seeds")
    ap.add_argument("--eval-model", default="convnet")
    ap.add_argument("--eval-width", type=int, default=None, help="width of the evaluation ConvNet (default: preset's)")
    ap.add_argument("--eval-epochs", type=int, default=None)
    ap.add_argument("--baseline", default="random,herding",
                    help="comma-separated coreset methods evaluated in the same run ('' for none)")
    ap.add_argument("--iterations", type=int, default=None, help="override the preset's distillation iterations")
    ap.add_argument("--init", choices=["random", "herding"], default=None,
                    help="real clips the synthetic set starts from (default: the preset's)")
    ap.add_argument("--fresh-cache", action="store_true", help="use an empty cache folder (cold features/experts)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.fresh_cache:
        os.environ["DDFAD_CACHE"] = tempfile.mkdtemp(prefix="ddfad-bench-")

    import torch

    from ddfad_apps.distill import distill, evaluate
    from ddfad_apps.distill.evaluate import eval_settings_for
    from ddfad_apps.distill.presets import method_settings
    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.training.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    splits = load_features(args.dataset, data_root=args.data_root, progress=False)
    stages["features"] = time.perf_counter() - t0
    overrides: dict = {"iterations": args.iterations} if args.iterations else {}
    if args.init:
        overrides["init"] = args.init
    settings = method_settings(args.method, args.preset, args.cpc, len(splits.train), **overrides)
    t = time.perf_counter()
    syn = distill(splits.train, args.cpc, args.method, args.preset, settings=settings, device=device,
                  test=splits.test, stats=splits.stats)
    stages["distill (incl. experts)"] = time.perf_counter() - t
    if "experts" in syn.meta:
        print(f"experts: test accuracy {syn.meta['experts']['test_accuracy']}")
    es = eval_settings_for(args.preset, args.eval_width, args.eval_epochs)
    t = time.perf_counter()
    res = evaluate(syn, splits.test, args.eval_model, args.seeds, es, device)
    stages["evaluation"] = time.perf_counter() - t
    print(f"accuracy {args.method}: {100 * res.mean:.2f} +- {100 * res.std:.2f} %", flush=True)
    total = time.perf_counter() - t0
    peak = peak_mb()
    baselines = {}
    for name in filter(None, args.baseline.split(",")):
        b = distill(splits.train, args.cpc, name, seed=0)
        baselines[name] = evaluate(b, splits.test, args.eval_model, args.seeds, es, device)
        print(f"accuracy {name}: {100 * baselines[name].mean:.2f} +- {100 * baselines[name].std:.2f} %", flush=True)
    print(f"\n{args.dataset} {args.method} cpc {args.cpc} preset {args.preset} on {device} "
          f"({torch.get_num_threads()} threads)")
    for k, v in stages.items():
        print(f"  {k:<24} {v:8.1f} s")
    print(f"  {'total':<24} {total:8.1f} s  ({total / 60:.1f} min)")
    print(f"  peak memory (RSS)        {peak:8.0f} MB")
    if syn.lr is not None:
        print(f"  learned lr               {syn.lr:.4g}")
    print(f"  accuracy {args.method:<14} {100 * res.mean:6.2f} +- {100 * res.std:.2f} %  ({res.model}, {args.seeds} seeds)")
    for name, base in baselines.items():
        print(f"  accuracy {name:<14} {100 * base.mean:6.2f} +- {100 * base.std:.2f} %  (same run)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
