"""Wall time, peak memory and accuracy of a distillation method against coreset baselines, under one protocol.

    python scripts/bench_distill.py --dataset fsdd --method mtt --cpc 10 --preset fast --set-seeds 3 --eval-seeds 2

Every set - the method's and the baselines' alike - goes through ``ddfad_apps.evidence``'s protocol: a stratified
validation part is carved from the training split first, every set is made from the rest (``fit``) with each of
``--set-seeds`` seeds, its training learning rate is chosen on the validation part from ``--lr-grid`` (plus the
set's learned rate, if it has one), and ``--eval-seeds`` fresh networks are trained at that rate and tested.
Accuracies are mean +- std [95% t-interval] over set seeds (each the mean of its evaluation networks); the method
is compared with every baseline by the paired difference on the same seeds, and "A beats B" is printed only where
that interval excludes zero.  ``--init random,herding`` distils from both starting sets, each compared with its
own start.  ``--validated-start`` adds ``<method>|val``: per set seed, the method's set or its start, whichever
scored higher on the validation carve (no test clip; ``evidence.validated_choice``).

Each stage is timed; the total covers everything, baselines included.  Peak memory is the process's maximum
resident set (``ru_maxrss``).  Experts and features are cached on disk by design: ``--fresh-cache`` measures the
cold pipeline (a temporary cache folder).  ``--json PATH`` writes every number, the protocol and the timings.

``--sets-dir DIR`` keeps every set and its evaluation in ``DIR`` (one folder per method, settings and seed), so a
run that is killed resumes where it stopped, and the same command started twice on one machine splits the sets
between the two processes (``ddfad_apps.storage.shared_work``): on 2 cores, two single-thread runs finish a
3-seed MTT comparison in about half the time of one.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


def report_made(name: str, sets: dict) -> None:
    first = next(iter(sets.values()))
    if "experts" in first.meta:
        print(f"experts: test accuracy {first.meta['experts']['test_accuracy']}", flush=True)
    print(f"made {name}: {len(sets)} sets of {len(first)} clips", flush=True)


def set_folder(unit) -> Path:
    """Where an evaluation unit's set is kept: the folder above the evaluation's."""
    return unit.folder.parent / "set"


def bench_units(root: Path, variants: dict, seeds, make, carved, splits, protocol, eval_seeds: int, device,
                key: dict) -> dict:
    """``{(name, seed): unit}``, each evaluating one set and making it first (its own unit) if it is not kept yet.

    Folders are named by a digest of everything behind the result (data, carve, method settings, seed; then the
    protocol and evaluation seeds), so changing any of them never reuses a stale set or score."""
    from ddfad_apps.distill.fingerprint import settings_digest, tensor_digest
    from ddfad_apps.distill.presets import method_settings
    from ddfad_apps.distill.synthetic_set import SyntheticSet
    from ddfad_apps.evidence import evaluate_set
    from ddfad_apps.evidence.compare import eval_seeds_for
    from ddfad_apps.evidence.protocol import SetEvaluation
    from ddfad_apps.jobs.files import write_json_atomic
    from ddfad_apps.storage.shared_work import Unit, run_units

    data = settings_digest(key, carved.as_dict(), tensor_digest(carved.fit.features), carved.val_index)
    units = {}
    for name, (method, overrides) in variants.items():
        settings = method_settings(method, key["preset"], key["cpc"], len(carved.fit), **overrides)
        for seed in seeds:
            folder = root / f"{name}-{settings_digest(data, method, settings, seed)[:16]}-seed{seed}"
            made = Unit(folder / "set", lambda n=name, s=seed: make(n, s), lambda st, f: st.save(f),
                        SyntheticSet.load, f"{name} seed {seed}")
            ev_seeds = eval_seeds_for(seed, eval_seeds)

            def evaluate(made=made, name=name, ev_seeds=ev_seeds) -> SetEvaluation:
                (made_set,) = run_units([made])
                return evaluate_set(made_set, carved, splits.test, protocol, ev_seeds, device, name)

            units[name, seed] = Unit(folder / f"eval-{settings_digest(protocol.as_dict(), ev_seeds)[:16]}", evaluate,
                                     lambda ev, f: write_json_atomic(f / "evaluation.json", ev.as_dict()),
                                     lambda f: SetEvaluation.from_dict(json.loads((f / "evaluation.json").read_text())),
                                     f"{name} seed {seed} evaluated")
    return units


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="fsdd")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--method", default="mtt")
    ap.add_argument("--cpc", type=int, default=10)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--set-seeds", type=int, default=3, help="sets made per method (seeds 0..n-1)")
    ap.add_argument("--eval-seeds", type=int, default=2, help="networks trained and tested per set")
    ap.add_argument("--seeds", type=int, default=None, help=argparse.SUPPRESS)  # old name of --eval-seeds
    ap.add_argument("--eval-model", default="convnet")
    ap.add_argument("--eval-width", type=int, default=None, help="width of the evaluation ConvNet (default: preset's)")
    ap.add_argument("--eval-epochs", type=int, default=None, help="epochs of the tested networks (default: preset's)")
    ap.add_argument("--select-epochs", type=int, default=None, help="epochs of the lr-selection networks "
                    "(default: --eval-epochs)")
    ap.add_argument("--lr-grid", type=floats, default=(0.003, 0.01, 0.03), help="candidate learning rates")
    ap.add_argument("--extend-edges", type=int, default=0,
                    help="grid steps a winning rate at the grid's edge may add beyond it, per side (EvalProtocol)")
    ap.add_argument("--val-fraction", type=float, default=0.1, help="share of each class carved for validation")
    ap.add_argument("--baseline", default="random,herding",
                    help="comma-separated coreset methods evaluated in the same run ('' for none)")
    ap.add_argument("--iterations", type=int, default=None, help="override the preset's distillation iterations")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=FIELD:VALUE,...",
                    help="also make the method with these settings fields replaced (e.g. mtt2=segments:2,"
                         "segment_threads:2), compared with the method on the same seeds; repeatable")
    ap.add_argument("--init", default=None,
                    help="real clips the synthetic set starts from: random, herding or both as 'random,herding' "
                         "(default: the preset's); each start is also a baseline")
    ap.add_argument("--validated-start", action="store_true",
                    help="also report '<method>|val': per set seed, the method's set or the set it started from, "
                         "whichever scored higher on the validation carve (evidence.validated_choice)")
    ap.add_argument("--fresh-cache", action="store_true", help="use an empty cache folder (cold features/experts)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--feature", default="fd_mfcc", help="feature kind (FeatureConfig.kind)")
    ap.add_argument("--hop-ms", type=float, default=None, help="feature hop (default: FeatureConfig's)")
    ap.add_argument("--window", default=None, help="analysis window: hann or hamming (default: FeatureConfig's)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--sets-dir", type=Path, default=None,
                    help="keep every set and its evaluation here: a killed run resumes, and two processes started "
                         "with the same command split the work")
    args = ap.parse_args()
    if args.seeds is not None:
        args.eval_seeds = args.seeds
    if args.validated_start and args.method != "mtt":
        sys.exit(f"--validated-start chooses between MTT's set and the set it starts from; --method {args.method} "
                 "starts from none")
    if args.fresh_cache:
        os.environ["DDFAD_CACHE"] = tempfile.mkdtemp(prefix="ddfad-bench-")

    import torch

    from ddfad_apps.distill import distill
    from ddfad_apps.distill.presets import CORESET_METHODS, method_settings, parse_overrides
    from ddfad_apps.distill.synthetic_set import SyntheticSet
    from ddfad_apps.evidence import EvalProtocol, compare, validated_choice
    from ddfad_apps.features.config import FeatureConfig
    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.storage.shared_work import run_units
    from ddfad_apps.training.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    protocol = EvalProtocol.for_preset(args.preset, args.eval_model, args.eval_width, args.eval_epochs,
                                       lr_grid=args.lr_grid, val_fraction=args.val_fraction,
                                       select_epochs=args.select_epochs, extend_edges=args.extend_edges)
    stages: dict[str, float] = {}
    t0 = time.perf_counter()
    framing = {k: v for k, v in (("hop_ms", args.hop_ms), ("window", args.window)) if v is not None}
    config = FeatureConfig(kind=args.feature, **framing)
    splits = load_features(args.dataset, data_root=args.data_root, config=config, progress=False)
    carved = protocol.carve(splits.train)  # before any set is made: no set sees the validation clips
    stages["features"] = time.perf_counter() - t0
    print(f"{args.dataset}: {len(carved.fit)} clips to make sets from, {len(carved.val)} to choose the lr, "
          f"{len(splits.test)} to test", flush=True)

    inits = [i.strip() for i in args.init.split(",")] if args.init else [None]
    bad = [i for i in inits if i not in (None, "random", "herding")]
    if bad:
        sys.exit(f"--init: unknown start(s) {bad}; use random, herding or random,herding")
    baselines = [b.strip() for b in args.baseline.split(",") if b.strip()]
    variants: dict[str, tuple[str, dict]] = {}
    starts: dict[str, str] = {}  # method variant -> the baseline it starts from
    if args.method in CORESET_METHODS:
        variants[args.method] = (args.method, {})
    else:
        for init in inits:
            overrides: dict = {"iterations": args.iterations} if args.iterations else {}
            if init:
                overrides["init"] = init
            start = init
            if start is None and args.method == "mtt":  # the preset's start
                start = method_settings(args.method, args.preset, args.cpc, len(carved.fit)).mtt.init
            name = f"{args.method}({start})" if len(inits) > 1 else args.method
            variants[name] = (args.method, overrides)
            if start and start not in baselines:
                baselines.append(start)
            if start:
                starts[name] = start
    plain = [name for name in variants]
    for text in args.variant:
        name, _, fields = text.partition("=")
        if not name or not fields or name in variants:
            sys.exit(f"--variant {text!r}: use NAME=FIELD:VALUE,... with a new NAME")
        try:
            extra = parse_overrides(fields)
        except ValueError as exc:
            sys.exit(f"--variant {text!r}: {exc}")
        variants[name] = (args.method, {**variants[plain[0]][1], **extra})
    for b in baselines:
        variants.setdefault(b, (b, {}))

    pairs = [(m, b) for m in variants if m not in baselines for b in baselines]
    pairs += [(v.partition("=")[0], plain[0]) for v in args.variant]  # each variant against the method itself

    def make(name: str, seed: int) -> SyntheticSet:
        method, overrides = variants[name]
        settings = method_settings(method, args.preset, args.cpc, len(carved.fit), **overrides)
        return distill(carved.fit, args.cpc, method, args.preset, settings=settings, seed=seed, device=device,
                       test=splits.test, stats=splits.stats, progress=False)

    sets: dict[str, dict[int, SyntheticSet]] = {}
    evaluations = None
    if args.sets_dir is None:  # one process, nothing kept: make every set, then evaluate every set
        for name in variants:
            t = time.perf_counter()
            sets[name] = {s: make(name, s) for s in range(args.set_seeds)}
            stages[f"make {name} x{args.set_seeds}"] = time.perf_counter() - t
            report_made(name, sets[name])
    else:  # one unit per (set, seed): make the set and evaluate it, kept on disk
        t = time.perf_counter()
        units = bench_units(args.sets_dir, variants, range(args.set_seeds), make, carved, splits, protocol,
                            args.eval_seeds, device, key=dict(dataset=args.dataset, cpc=args.cpc, preset=args.preset,
                                                              feature=config))
        evaluations = dict(zip(units, run_units(list(units.values()))))
        sets = {name: {s: SyntheticSet.load(set_folder(units[name, s])) for s in range(args.set_seeds)}
                for name in variants}
        for name in variants:
            report_made(name, sets[name])
        stages[f"make and evaluate (kept in {args.sets_dir})"] = time.perf_counter() - t
    t = time.perf_counter()
    result = compare(sets, carved, splits.test, protocol, args.eval_seeds, device, pairs or None, report=print,
                     evaluations=evaluations)
    for name, res in result.methods.items():  # with --sets-dir: whichever process evaluated each set
        stages[f"evaluate {name}"] = sum(sum(ev.seconds.values()) for ev in res.runs.values())
    kept = []
    for name, start in starts.items() if args.validated_start else ():
        chosen = validated_choice(result.methods[name], result.methods[start])
        result.add(chosen, [(chosen.name, b) for b in baselines if b != start] + [(chosen.name, name),
                                                                                (chosen.name, start)])
        kept.append(f"{chosen.name} kept: " + ", ".join(f"set seed {s} {ev.name}" for s, ev in chosen.runs.items()))
    if args.sets_dir is None:  # else it was part of the units above
        stages["evaluation (all)"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    peak = peak_mb()

    print(f"\nfeatures {config.kind}, {config.window} window, {config.frame_ms:g} ms frames, {config.hop_ms:g} ms hop "
          f"(input {tuple(splits.train.input_shape)})")
    print(f"{args.dataset} {args.method} cpc {args.cpc} preset {args.preset} on {device} "
          f"({torch.get_num_threads()} threads); {args.set_seeds} set seeds x {args.eval_seeds} evaluation seeds; "
          f"{protocol.model} {protocol.model_kwargs}, {protocol.epochs} epochs, lr grid {list(protocol.lr_grid)} "
          f"chosen on {len(carved.val)} validation clips")
    for k, v in stages.items():
        print(f"  {k:<32} {v:8.1f} s")
    print(f"  {'total (everything above)':<32} {total:8.1f} s  ({total / 60:.1f} min)")
    print(f"  peak memory (RSS)                {peak:8.0f} MB")
    learned = [s.lr for v in sets.values() for s in v.values() if getattr(s, "lr", None)]
    if learned:
        print(f"  learned lr                       {', '.join(f'{lr:.4g}' for lr in learned)}")
    print(result.table())
    for line in kept:
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"args": {k: (list(v) if isinstance(v, tuple) else str(v) if isinstance(v, Path) else v)
                            for k, v in vars(args).items()},
                   "device": str(device), "threads": torch.get_num_threads(), "seconds": {**stages, "total": total},
                   "peak_rss_mb": peak, **result.as_dict()}
        args.json.write_text(json.dumps(payload, indent=2))
        print(f"wrote {args.json}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
