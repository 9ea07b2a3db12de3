"""Pair the runs of several `ddfad-apps cicl` result folders by (network, memory size, seed) and print verdicts.

    python scripts/compare_cicl_runs.py scale_free=DIR_A/fsdd:distilled absolute=DIR_B/fsdd:distilled \
        herding=DIR_B/fsdd:herding random=DIR_B/fsdd:random

Why: one `cicl` job pairs its memories by seed, but a change to how one memory is made (a step rule, an init) is
measured in another job, often another folder; seeds fix the class order and the networks' draws, so runs of the
same seed in two folders are paired too.  Each argument is LABEL=FOLDER:MEMORY (FOLDER is a job's
``<out>/<dataset>``); the first label is compared with every other, at every (network, size) all of them ran, on
the seeds they share.  Final accuracy, mean +- std [95% t-interval] over seeds, and the paired verdicts.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ddfad_apps.evidence import paired_difference, summarize, verdict


def load_runs(folder: Path, memory: str) -> dict[str, dict[int, float]]:
    """``{cell: {seed: final accuracy}}`` of ``memory`` in a cicl result folder, cells named as cicl names them
    (``convnet-mpc20``) from each run's own record: a job of one network and size keeps its runs in
    ``<memory>/``, a grid in ``<cell>/<memory>/``."""
    runs: dict[str, dict[int, float]] = {}
    for path in sorted({*folder.glob(f"{memory}/seed*.json"), *folder.glob(f"*/{memory}/seed*.json")}):
        result = json.loads(path.read_text())
        cell = f"{result.get('model', 'convnet')}-mpc{result.get('mem_per_class')}"
        runs.setdefault(cell, {})[int(result["seed"])] = float(result["final_accuracy"])
    if not runs:
        raise SystemExit(f"no {memory} runs under {folder} (expected {folder}/[<cell>/]{memory}/seed<N>.json)")
    return runs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("specs", nargs="+", help="LABEL=FOLDER:MEMORY; the first is compared with the others")
    args = ap.parse_args(argv)
    series: dict[str, dict[str, dict[int, float]]] = {}
    for spec in args.specs:
        label, sep, rest = spec.partition("=")
        folder, sep2, memory = rest.rpartition(":")
        if not (sep and sep2 and label and folder and memory):
            raise SystemExit(f"{spec!r}: use LABEL=FOLDER:MEMORY")
        series[label] = load_runs(Path(folder), memory)
    first, *others = series
    cells = sorted(set.intersection(*(set(runs) for runs in series.values())),
                   key=lambda c: (c.rsplit("-mpc", 1)[0], int(c.rsplit("-mpc", 1)[1]) if "-mpc" in c else 0))
    for cell in cells:
        seeds = sorted(set.intersection(*(set(runs[cell]) for runs in series.values())))
        print(f"\n{cell}, seeds {', '.join(map(str, seeds))} (final accuracy %):")
        for label, runs in series.items():
            print(f"  {label:12s} {summarize([runs[cell][s] for s in seeds]).format()}")
        for label in others:
            diff = paired_difference({s: series[first][cell][s] for s in seeds},
                                     {s: series[label][cell][s] for s in seeds})
            print(f"  {verdict(first, label, diff)}")


if __name__ == "__main__":
    main()
