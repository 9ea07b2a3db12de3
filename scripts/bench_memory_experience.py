"""Why a distilled replay memory replays worse than its start: one experience, memories side by side.

For one experience of a seeded class-incremental stream (the classes ``cicl`` gives it at ``--seed``), a stratified
validation slice is carved from the experience's training rows; every memory is made from the rest: ``start`` (the
real clips a distilled memory starts from: herding in the raw inputs), ``random``, ``mtt`` and ``dm`` (the
``DistilledMemory`` defaults of those methods) and any ``--variant``.  ``--nets`` fresh ConvNets (the evaluation
recipe: augmented, ``--epochs`` at lr ``--lr``, the rate replay trains at) train on each memory alone and are
scored on the experience's test rows and on the validation slice.  The validation rows come from the training
speakers, the test rows (RAVDESS: actors 21-24) do not, so a memory that validates better than its start but tests
worse has learnt its training speakers.  Also printed: the learned lr and how far the clips moved from the start
(RMS, in the inputs' spread).

    OMP_NUM_THREADS=1 python scripts/bench_memory_experience.py --dataset ravdess --experience 0 \\
        --memories start,mtt,mttfit --variant mttfit=mtt,lr_init:null
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from ddfad_apps.distill.presets import parse_memories  # noqa: E402

BUILT_IN = ("start", "random", "mtt", "dm")


def experience_rows(dataset: str, data_root: str | None, seed: int, experience: int, per_experience: int,
                    val_fraction: float):
    """(distillation rows, validation rows, test rows) of one experience, labelled ``0..n-1`` in class order."""
    from ddfad_apps.continual.benchmarks import class_order
    from ddfad_apps.data.registry import resolve_dataset
    from ddfad_apps.data.splits import stratified_split
    from ddfad_apps.jobs.data import load_splits
    from strategies.exemplar_storage import local_feature_set

    splits = load_splits(resolve_dataset(dataset), data_root, progress=False)
    order = class_order(splits.train.num_classes, seed)
    classes = order[experience * per_experience:(experience + 1) * per_experience]
    if not classes:
        raise SystemExit(f"experience {experience} is past the stream's {len(order)} classes")

    def rows(data):
        keep = torch.isin(data.labels, torch.tensor(classes))
        return local_feature_set(data.features[keep], data.labels[keep], classes)

    train = rows(splits.train)
    fit, val = stratified_split(train.labels.tolist(), val_fraction, seed)
    return train.subset(fit), train.subset(val), rows(splits.test), classes


def make_memory(name: str, variants: dict, data, k: int, seed: int, experience: int, model: str = "convnet",
                model_kwargs: dict | None = None):
    """The memory ``name`` of ``k`` clips per class of ``data`` (a SyntheticSet) and its seconds; distilled memories
    are made with ``model`` (as cicl makes them with its network)."""
    from ddfad_apps.distill import distill
    from strategies import DistilledMemory

    started = time.perf_counter()
    if name in ("start", "random"):
        syn = distill(data, k, "herding" if name == "start" else "random", seed=seed, progress=False)
    else:
        method, overrides = variants.get(name, (name, {}))
        memory = DistilledMemory(10 ** 9, k, method, "fast", overrides={"init": "herding", **overrides},
                                 model=model, model_kwargs=model_kwargs or {"width": 32}, seed=seed)
        syn = distill(data, k, method, "fast", settings=memory.settings_for(k), seed=seed * 1000 + experience,
                      progress=False)
    return syn, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="ravdess")
    p.add_argument("--data-root", default=None)
    p.add_argument("--seed", type=int, default=0, help="the stream's seed (class order), as cicl's")
    p.add_argument("--experience", type=int, default=0)
    p.add_argument("--classes-per-experience", type=int, default=2)
    p.add_argument("--per-class", type=int, default=20)
    p.add_argument("--memories", default="start,mtt")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=METHOD,FIELD:VALUE,...")
    p.add_argument("--nets", type=int, default=3)
    p.add_argument("--epochs", type=int, default=150)
    p.add_argument("--lr", type=float, default=0.01, help="the rate networks train on a memory at (cicl: 0.01)")
    p.add_argument("--val-fraction", type=float, default=0.2)
    p.add_argument("--model", default="convnet", help="network distilling the memory and trained on it (as cicl's "
                   "--model; width 32 for convnet, else cicl's fast width 16)")
    args = p.parse_args(argv)
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), flush=True)
    try:
        memories, variants = parse_memories(args.memories, args.variant, BUILT_IN)
    except ValueError as exc:
        p.error(str(exc))

    from ddfad_apps.distill.evaluate import eval_settings_for, train_on_set
    from ddfad_apps.features.dataset import FeatureSet
    from ddfad_apps.training import accuracy

    data, val, test, classes = experience_rows(args.dataset, args.data_root, args.seed, args.experience,
                                               args.classes_per_experience, args.val_fraction)
    print(f"{args.dataset}, seed {args.seed}, experience {args.experience}: classes {classes}, {len(data)} rows "
          f"distilled, {len(val)} validation, {len(test)} test; {args.per_class} per class", flush=True)
    kwargs = {"width": 32 if args.model == "convnet" else 16}
    recipe = eval_settings_for("fast", width=kwargs["width"], epochs=args.epochs)
    spread = float(data.features.std())
    start = None
    for name in memories:
        syn, seconds = make_memory(name, variants, data, args.per_class, args.seed, args.experience, args.model,
                                   kwargs)
        feats = FeatureSet(syn.features, syn.labels, data.classes, {})
        nets = [train_on_set(feats, len(classes), data.input_shape, args.model, recipe, args.lr, s)
                for s in range(args.nets)]
        on_test = [100 * accuracy(n, test) for n in nets]
        on_val = [100 * accuracy(n, val) for n in nets]
        moved = ""
        if name == "start":
            start = syn
        elif start is not None and name != "random":
            rms = [float((syn.features[syn.labels == c] - start.features[start.labels == c]).square().mean().sqrt())
                   for c in range(len(classes))]
            moved = f", moved {statistics.fmean(rms) / spread:.3f} spreads from the start"
        lr = f", learned lr {syn.lr:.4g}" if syn.lr else ""
        print(f"  {name:<10} test {statistics.fmean(on_test):6.2f} {[round(a, 1) for a in on_test]}  "
              f"validation {statistics.fmean(on_val):6.2f} {[round(a, 1) for a in on_val]}  "
              f"({seconds:.0f} s{lr}{moved})", flush=True)


if __name__ == "__main__":
    main()
