"""Probe: does a better k-per-class memory carry into class-incremental accuracy?  (An oracle, not a method.)

Why: on RAVDESS the distilled memory ends level with EEIL's herding at 1, 2 and 5 clips per class, while offline
(Table I) an MTT set of 1 clip per class trains a network from scratch 11 points above herding's.  Two readings:
the per-experience distillation cannot make clips as good as Table I's (each experience holds 2 classes), or
clip quality does not carry into EEIL's final accuracy at all.  This probe separates them: every class's memory
is taken from a set distilled *offline from all classes' training clips* (``ddfad-apps distill --method mtt
--cpc 1``; a stream never allows that, hence "oracle"), and the run is otherwise ``cicl``'s (same stream, class
order, EEIL recipe, seeds), beside herding run in the same process.

    python scripts/probe_memory_oracle.py --dataset ravdess --sets S0,S1,S2 --seeds 0,1,2 [--mem-per-class K] --json OUT.json

``--report`` prints the finished runs of ``--seeds`` (per seed, mean ± std, and the paired 95% interval of the
first memory against each other) without running anything.  ``--sets`` gives one distilled set folder per seed (seed i uses set i).  Each run's result is merged into the
JSON as it finishes (under a lock, written atomically), a rerun skips the finished ones, a second process never
overwrites a result already there, and a JSON written with other settings (memory size, experiences, data set)
is refused rather than mixed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch


def oracle_memory_class():
    from strategies.class_memory import ClassMemoryBuffer

    class OracleMemory(ClassMemoryBuffer):
        """Every class's memory is a fixed set's rows of that class (given in the stream's feature space)."""

        kind = "oracle"

        def __init__(self, max_size: int, mem_per_class: int | None, seed: int, *, rows: dict[int, torch.Tensor],
                     num_classes: int | None = None) -> None:
            super().__init__(max_size, mem_per_class, seed, num_classes=num_classes)
            self.rows = rows

        def select(self, x: torch.Tensor, y: torch.Tensor, classes: list[int], k: int,
                   agent: Any) -> dict[int, torch.Tensor]:
            return {c: self.rows[c][:k].to(x.dtype) for c in classes}

    return OracleMemory


def set_rows(folder: str, splits: Any) -> dict[int, torch.Tensor]:
    """The set's clips per class index of ``splits``, moved from the set's normalisation into the splits' one."""
    from ddfad_apps.distill.synthetic_set import SyntheticSet

    syn = SyntheticSet.load(folder)
    if syn.stats is None:
        raise SystemExit(f"{folder} records no normalisation statistics, so its clips cannot be placed in the "
                         "stream's feature space")
    feats = splits.stats.apply(syn.stats.invert(syn.features))
    stream, missing = list(splits.train.classes), sorted(set(splits.train.classes) - set(syn.classes))
    if missing or len(syn.classes) != len(stream):
        raise SystemExit(f"{folder} was distilled for classes {syn.classes}, the stream has {stream}"
                         + (f" (missing: {', '.join(missing)})" if missing else ""))
    return {stream.index(name): feats[syn.labels == i] for i, name in enumerate(syn.classes)}


def record(out: Path, key: str, entry: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Merge one run's ``entry`` into ``out`` under its lock; ``False`` (nothing written) when ``key`` is there."""
    from ddfad_apps.jobs.files import write_json_atomic
    from ddfad_apps.storage.locks import FileLock, lock_path

    with FileLock(lock_path(out)):
        done = read_results(out, settings)
        if key in done:
            return False
        write_json_atomic(out, {**done, "_settings": settings, key: entry})
    return True


def read_results(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """The results already in ``out`` (empty when it does not exist), refused when made with other settings."""
    done: dict[str, Any] = json.loads(out.read_text()) if out.exists() else {}
    if done.get("_settings", settings) != settings:
        raise SystemExit(f"{out} holds runs made with {done['_settings']}, not {settings}; use another --json")
    return done


def report(done: dict[str, Any], memories: list[str], seeds: list[int]) -> str:
    """Per-seed final accuracy and forgetting, each memory's mean ± std [95% interval], and the paired 95% interval
    of the first memory minus each other one (only seeds every memory finished)."""
    from ddfad_apps.evidence.stats import mean, paired_difference, summarize

    ready = [s for s in seeds if all(f"{m}/seed{s}" in done for m in memories)]
    if not ready:
        raise SystemExit(f"no seed of {seeds} has finished every memory of {memories}")
    lines = [f"{m:8s} seed {s}: final {100 * done[f'{m}/seed{s}']['final_accuracy']:.2f} forgetting "
             f"{100 * done[f'{m}/seed{s}']['forgetting']:.2f}" for s in ready for m in memories]
    acc = {m: [100 * done[f"{m}/seed{s}"]["final_accuracy"] for s in ready] for m in memories}
    for m in memories:
        fg = mean([100 * done[f"{m}/seed{s}"]["forgetting"] for s in ready])
        lines.append(f"# {m}: {summarize(acc[m]).format(scale=1)} %; forgetting {fg:.2f}")
    for other in memories[1:]:
        x = paired_difference(acc[memories[0]], acc[other])
        lines.append(f"# {memories[0]} - {other}: {x.mean:+.2f} [{x.low:+.2f}, {x.high:+.2f}] "
                     f"(seeds {', '.join(map(str, ready))})")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="ravdess")
    ap.add_argument("--sets", help="comma list of distilled set folders, one per seed")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--experiences", type=int, default=4)
    ap.add_argument("--mem-per-class", type=int, default=1, help="clips per class (each set must hold as many)")
    ap.add_argument("--memories", default="oracle,herding")
    ap.add_argument("--json", required=True)
    ap.add_argument("--report", action="store_true", help="print the finished runs of --seeds; run nothing")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    memories = args.memories.split(",")
    if args.report:
        print(report(json.loads(Path(args.json).read_text()), memories, seeds))
        return
    if not args.sets:
        ap.error("--sets is needed to run (or --report to print finished runs)")

    from ddfad_apps.continual import runner
    from ddfad_apps.continual.runner import CICLConfig, run_cicl
    from ddfad_apps.jobs.data import load_splits, open_dataset

    sets = args.sets.split(",")
    if len(sets) < len(seeds):
        raise SystemExit(f"{len(seeds)} seeds need {len(seeds)} sets, got {len(sets)}")
    ref, _ = open_dataset(args.dataset, None)
    splits = load_splits(ref, None, progress=False)
    cfg = CICLConfig.preset("fast", mem_per_class=args.mem_per_class)
    out = Path(args.json)
    settings = {"dataset": args.dataset, "mem_per_class": args.mem_per_class, "experiences": args.experiences}
    read_results(out, settings)  # other settings refused before anything runs
    make_memory = runner.make_memory
    OracleMemory = oracle_memory_class()
    for seed, folder in zip(seeds, sets):
        rows = set_rows(folder, splits)
        if min(len(r) for r in rows.values()) < args.mem_per_class:
            raise SystemExit(f"{folder} holds fewer than {args.mem_per_class} clips for some class")

        def patched(kind, cfg, num_classes, seed, device, rows=rows):
            if kind == "oracle":
                return OracleMemory(cfg.mem_per_class * num_classes, cfg.mem_per_class, seed, rows=rows,
                                    num_classes=num_classes)
            return make_memory(kind, cfg, num_classes, seed, device)

        runner.make_memory = patched
        for memory in memories:
            key = f"{memory}/seed{seed}"
            if key in read_results(out, settings):
                continue
            res = run_cicl(splits, memory, seed, cfg, args.experiences, progress=False)
            entry = {k: res[k] for k in ("final_accuracy", "forgetting", "average_incremental_accuracy",
                                         "accuracy_curve", "seconds")}
            entry["set"] = folder if memory == "oracle" else None
            kept = record(out, key, entry, settings)
            print(f"{key}: final {100 * res['final_accuracy']:.2f} forgetting {100 * res['forgetting']:.2f} "
                  f"avg incr {100 * res['average_incremental_accuracy']:.2f} ({res['seconds']:.0f}s)"
                  + ("" if kept else "; another process had recorded it first, kept that one"), flush=True)


if __name__ == "__main__":
    main()
