"""Replay memories compared on a non-audio class-incremental stream (and on FSDD): final accuracy and seconds.

The non-audio stream is what a new user would write: scikit-learn's 8x8 digits (inputs in [0, 1]), 5
experiences of 2 classes, a small CNN of the user's own, Avalanche's ``Naive`` with a ``ReplayPlugin`` whose
``storage_policy`` is the memory under test (the README's one line).  ``--dataset digits-vectors`` gives the same
digits as flat 64-vectors to a user's MLP (which the registry ConvNet cannot take: memory ``dm-own`` is DM
distilled with fresh copies of that MLP, ``DistilledMemory(model="strategy")``).  ``--dataset fsdd`` runs the
same on FSDD's FD-MFCC features.  The summary pairs every memory with ``random`` by seed.  Each finished
(dataset, memory, seed) is appended to ``--out`` (JSON lines) as it ends, so an interrupted run resumes; the
summary (mean, std over seeds; distillation seconds per experience) is printed.

    OMP_NUM_THREADS=1 python scripts/bench_memory.py --memories mtt,dm,random,none --seeds 0,1,2
    OMP_NUM_THREADS=1 python scripts/bench_memory.py --dataset fsdd --memories mtt,dm,random --seeds 0
    OMP_NUM_THREADS=1 python scripts/bench_memory.py --dataset digits-vectors --memories dm-own,random,herding,none
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from ddfad_apps.distill.presets import parse_memories  # noqa: E402
from ddfad_apps.features.dataset import FeatureSet  # noqa: E402

MEMORIES = ("mtt", "dm", "dm-own", "random", "herding", "none")


class UserCNN(nn.Module):
    """A small CNN as a user would write it (not one of the toolkit's models)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.head = nn.Linear(32 * 16, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class UserMLP(nn.Module):
    """A user's MLP on flat vectors (the registry ConvNet takes (C, H, W) inputs only)."""

    def __init__(self, inputs: int, num_classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(inputs, 64), nn.ReLU())
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def flat(split: FeatureSet) -> FeatureSet:
    """``split`` with every input flattened to a vector."""
    return FeatureSet(split.features.flatten(1), split.labels, split.classes, dict(split.meta))


def user_model(dataset: str, train: FeatureSet) -> nn.Module:
    """The user's own network for ``dataset``: an MLP for flat vectors, else the small CNN."""
    if dataset == "digits-vectors":
        return UserMLP(train.input_shape[0], train.num_classes)
    return UserCNN(train.input_shape[0], train.num_classes)


def digits_splits(seed: int = 0, test_fraction: float = 0.25) -> tuple[FeatureSet, FeatureSet]:
    """scikit-learn's 8x8 digits as ``(N, 1, 8, 8)`` inputs in [0, 1], split per class (seeded)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    gen = torch.Generator().manual_seed(seed)
    train_idx, test_idx = [], []
    for c in range(10):
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_test = int(round(len(idx) * test_fraction))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    classes = [str(c) for c in range(10)]
    tr, te = torch.cat(train_idx), torch.cat(test_idx)
    meta = {"dataset": "sklearn-digits"}
    return FeatureSet(x[tr], y[tr], classes, meta), FeatureSet(x[te], y[te], classes, dict(meta))


def make_storage(memory: str, mem_size: int, mem_per_class: int, seed: int,
                 variants: dict[str, tuple[str, dict]] | None = None):
    """The storage policy named ``memory`` (``None`` for no replay), with the user's one-line defaults; a name in
    ``variants`` (``{name: (method, overrides)}``) is a ``DistilledMemory`` of that method with those overrides."""
    from strategies import DistilledMemory, RandomMemory
    from strategies.distilled_storage import STRATEGY_MODEL
    from strategies.exemplar_storage import HerdingMemory

    if memory in (variants or {}):
        method, overrides = variants[memory]
        overrides = dict(overrides)
        context = bool(overrides.pop("context", False))  # a memory option, not a settings field
        return DistilledMemory(mem_size, mem_per_class=mem_per_class, method=method, seed=seed, overrides=overrides,
                               context=context)
    if memory == "mtt":
        return DistilledMemory(mem_size, mem_per_class=mem_per_class, method="mtt", seed=seed)
    if memory == "dm":
        return DistilledMemory(mem_size, mem_per_class=mem_per_class, method="dm", seed=seed)
    if memory == "dm-own":
        return DistilledMemory(mem_size, mem_per_class=mem_per_class, method="dm", model=STRATEGY_MODEL, seed=seed)
    if memory == "random":
        return RandomMemory(mem_size, mem_per_class=mem_per_class, seed=seed)
    if memory == "herding":
        return HerdingMemory(mem_size, mem_per_class=mem_per_class, seed=seed)
    if memory == "none":
        return None
    raise ValueError(f"unknown memory {memory!r}; use one of {', '.join(MEMORIES)}")


def run_stream(train: FeatureSet, test: FeatureSet, memory: str, seed: int, experiences: int = 5,
               mem_per_class: int = 20, epochs: int = 4, dataset: str = "digits",
               variants: dict[str, tuple[str, dict]] | None = None) -> dict:
    """Plain Avalanche ``Naive`` + ``ReplayPlugin(storage_policy=memory)`` training ``dataset``'s user model
    (:func:`user_model`, drawn after seeding); final accuracy on all test inputs."""
    from avalanche.training import Naive
    from avalanche.training.plugins import EvaluationPlugin, ReplayPlugin

    from ddfad_apps.continual.benchmarks import feature_benchmark

    bench = feature_benchmark(train, test, experiences, seed=seed)
    torch.manual_seed(seed)
    model = user_model(dataset, train)
    mem_size = mem_per_class * train.num_classes
    storage = make_storage(memory, mem_size, mem_per_class, seed, variants)
    plugins = [ReplayPlugin(mem_size=mem_size, storage_policy=storage)] if memory != "none" else []
    strategy = Naive(model=model, optimizer=torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9),
                     criterion=nn.CrossEntropyLoss(), train_mb_size=32, train_epochs=epochs, eval_mb_size=512,
                     plugins=plugins, evaluator=EvaluationPlugin(loggers=[]))
    for exp in bench.train_stream:
        strategy.train(exp)
    model.eval()
    with torch.no_grad():
        acc = float((model(test.features).argmax(1) == test.labels).float().mean()) * 100
    results = getattr(storage, "results", [])
    out = {"memory": memory, "seed": seed, "final_accuracy": round(acc, 2),
           "distill_seconds": [r["seconds"] for r in results], "learned_lr": [r.get("lr") for r in results]}
    if storage is not None and storage.memory:
        mem_x, _ = storage.tensors()
        out["memory_range"] = [round(float(mem_x.min()), 3), round(float(mem_x.max()), 3)]
    return out


def _splits(dataset: str, seed: int, data_root: str | None):
    if dataset in ("digits", "digits-vectors"):
        train, test = digits_splits(seed)
        return (train, test) if dataset == "digits" else (flat(train), flat(test))
    from ddfad_apps.features import load_features

    s = load_features(dataset, data_root)
    return s.train, s.test


@contextmanager
def cold_cache(cold: bool):
    """With ``cold``, an empty ``DDFAD_CACHE`` for the block (removed after): nothing is reused between runs."""
    if not cold:
        yield
        return
    before = os.environ.get("DDFAD_CACHE")
    with tempfile.TemporaryDirectory(prefix="ddfad-bench-memory-") as tmp:
        os.environ["DDFAD_CACHE"] = tmp
        try:
            yield
        finally:
            if before is None:
                os.environ.pop("DDFAD_CACHE", None)
            else:
                os.environ["DDFAD_CACHE"] = before


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="digits", help="'digits' (sklearn 8x8, non-audio; a user's CNN), "
                   "'digits-vectors' (the same as 64-vectors; a user's MLP) or an audio data set")
    p.add_argument("--data-root", default=None)
    p.add_argument("--memories", default="mtt,dm,random,none")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--mem-per-class", type=int, default=20)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--out", type=Path, default=Path("bench_memory.jsonl"))
    p.add_argument("--variant", action="append", default=[], metavar="NAME=METHOD,FIELD:VALUE,...",
                   help="also a distilled memory NAME: METHOD with these settings fields replaced (e.g. "
                        "mtt10=mtt,iterations:10); list NAME in --memories")
    p.add_argument("--cold-cache", action="store_true",
                   help="every run gets an empty cache, so each distillation's seconds include its experts")
    args = p.parse_args(argv)
    print("command:", " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]), flush=True)
    try:
        memories, variants = parse_memories(args.memories, args.variant, MEMORIES)
    except ValueError as exc:
        p.error(str(exc))
    seeds = [int(s) for s in args.seeds.split(",")]
    done = {}
    if args.out.exists():
        for line in args.out.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                done[(r["dataset"], r["memory"], r["seed"], r["mem_per_class"], r["epochs"])] = r
    for seed in seeds:
        train, test = _splits(args.dataset, seed, args.data_root)
        for m in memories:
            key = (args.dataset, m, seed, args.mem_per_class, args.epochs)
            spec = list(variants[m]) if m in variants else None
            if key in done:
                if done[key].get("variant") != spec:
                    sys.exit(f"{args.out} holds a run of {m!r} made with {done[key].get('variant')}, not {spec}: "
                             "name the variant differently or use another --out")
                continue
            t0 = time.perf_counter()
            with cold_cache(args.cold_cache):
                r = run_stream(train, test, m, seed, mem_per_class=args.mem_per_class, epochs=args.epochs,
                               dataset=args.dataset, variants=variants)
            r.update(dataset=args.dataset, mem_per_class=args.mem_per_class, epochs=args.epochs,
                     seconds=round(time.perf_counter() - t0, 1), variant=spec, cold_cache=args.cold_cache)
            with args.out.open("a") as f:  # one complete line per finished run: a crash loses only the current run
                f.write(json.dumps(r) + "\n")
            done[key] = r
            print(json.dumps(r), flush=True)
    print(f"\n{args.dataset}, {args.mem_per_class} per class, seeds {seeds}:")
    for m in memories:
        rows = [done[(args.dataset, m, s, args.mem_per_class, args.epochs)] for s in seeds]
        accs = [r["final_accuracy"] for r in rows]
        secs = [x for r in rows for x in r["distill_seconds"]]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        per_exp = f", distillation {statistics.mean(secs):.1f} s/experience" if secs else ""
        print(f"  {m:8s} {statistics.mean(accs):6.2f} +- {sd:5.2f}  {accs}{per_exp}")
    if "random" in memories and len(seeds) > 1:
        from ddfad_apps.evidence.stats import paired_difference, verdict

        ref = [done[(args.dataset, "random", s, args.mem_per_class, args.epochs)]["final_accuracy"] for s in seeds]
        for m in (m for m in memories if m != "random"):
            accs = [done[(args.dataset, m, s, args.mem_per_class, args.epochs)]["final_accuracy"] for s in seeds]
            print("  " + verdict(m, "random", paired_difference(accs, ref), scale=1.0))


if __name__ == "__main__":
    main()
