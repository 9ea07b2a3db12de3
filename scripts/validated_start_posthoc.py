"""What "validated MTT" (per set seed, MTT's set or the set it started from, whichever scored higher on the validation
carve: ``ddfad_apps.evidence.validated_choice``) would have given on the comparisons already committed.

    python scripts/validated_start_posthoc.py                  # every source below
    python scripts/validated_start_posthoc.py --log LOG --start dm --baseline herding   # one bench_distill log

Post hoc: the rule was suggested by the held-out-speaker splits it is applied to here, so these figures show what
it does, not that it works; ``docs/evidence/fsdd_speakers_split_d_cpc10.txt`` is its first test on data it was not
read from.  It needs no new training: every set was already scored on the validation carve to choose its learning
rate.  Sources are the paper report's set cells (``docs/paper/raw``, the official splits) and the logs of
``scripts/bench_distill.py`` kept in ``docs/evidence`` (each set's line as ``SetEvaluation`` prints it; a log that
holds two runs of the same sets counts its last line per set).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from ddfad_apps.evidence import MethodResult, SetEvaluation, paired_difference, validated_choice, verdict

ROOT = Path(__file__).resolve().parents[1]
RAW = ROOT / "docs" / "paper" / "raw"
EVIDENCE = ROOT / "docs" / "evidence"

# (label, source, the start MTT's preset uses at that CPC, baseline); a source is a bench_distill log in
# docs/evidence, or (data set, CPC): the paper report's default-size set cells of MTT, its start and the baseline
SOURCES: list[tuple[str, str | tuple[str, int], str, str]] = [
    ("FSDD official, CPC 10", ("fsdd", 10), "dm", "herding"),
    ("FSDD official, CPC 1", ("fsdd", 1), "herding", "herding"),
    ("RAVDESS official, CPC 10", ("ravdess", 10), "dm", "herding"),
    ("RAVDESS official, CPC 1", ("ravdess", 1), "herding", "herding"),
    ("FSDD speakers A, CPC 10", "fsdd_speakers_dm_start_cpc10.txt", "dm", "herding"),
    ("FSDD speakers B, CPC 10", "fsdd_speakers_split_b_cpc10.txt", "dm", "herding"),
    ("FSDD speakers C, CPC 10", "fsdd_speakers_split_c_cpc10.txt", "dm", "herding"),
    ("RAVDESS actors 1-4, CPC 10", "ravdess_actors_split_b_cpc10.txt", "dm", "herding"),
]

# One set's line as SetEvaluation.__str__ prints it inside bench_distill's "set seed N: ..." lines.
LINE = re.compile(r"set seed (?P<seed>\d+): (?P<name>\S+) \((?P<model>\w+)\): (?P<mean>[\d.]+) .*? at lr "
                  r"(?P<lr>[\d.e-]+) \((?P<source>\w+); validation (?P<val>[^)]*)\)")


def from_log(path: Path, model: str = "convnet") -> dict[str, MethodResult]:
    """Every method's per-set-seed evaluation in a bench_distill log (its last line per set seed)."""
    runs: dict[str, dict[int, SetEvaluation]] = {}
    for line in path.read_text().splitlines():
        m = LINE.search(line)
        if not m or m["model"] != model:
            continue
        scores = {float(lr): float(v) / 100 for lr, v in re.findall(r"([\d.e-]+): ([\d.]+)", m["val"])}
        mean = float(m["mean"]) / 100
        runs.setdefault(m["name"], {})[int(m["seed"])] = SetEvaluation(
            m["name"], model, [0], [mean], float(m["lr"]), m["source"], scores, None, {}, {}, {})
    return {name: MethodResult(name, r) for name, r in runs.items()}


def from_cells(dataset: str, cpc: int, methods: tuple[str, ...], model: str = "convnet") -> dict[str, MethodResult]:
    """Every method's evaluations on ``model`` from the report's default-size set cells (found as the report
    declares them, so a re-keyed cell is still found)."""
    from ddfad_apps.paper.cells import SIZES, declare, find_set

    cells = declare(SIZES["default"])
    out = {}
    for name in dict.fromkeys(methods):
        record = json.loads((RAW / f"{find_set(cells, dataset, name, cpc).key}.json").read_text())
        runs = record["result"]["evaluations"][model]["runs"]
        out[name] = MethodResult(name, {int(s): SetEvaluation.from_dict(r) for s, r in runs.items()})
    return out


def common(a: MethodResult, b: MethodResult) -> tuple[dict[int, float], dict[int, float]]:
    seeds = sorted(set(a.runs) & set(b.runs))
    return {s: a.per_set_seed[s] for s in seeds}, {s: b.per_set_seed[s] for s in seeds}


def report(label: str, methods: dict[str, MethodResult], start: str, baseline: str) -> None:
    mtt, first = methods["mtt"], methods[start]
    seeds = sorted(set(mtt.runs) & set(first.runs) & set(methods[baseline].runs))
    mtt = MethodResult("mtt", {s: mtt.runs[s] for s in seeds})
    chosen = validated_choice(mtt, MethodResult(start, {s: first.runs[s] for s in seeds}), "validated mtt")
    kept = "".join("M" if chosen.runs[s].name == "mtt" else "S" for s in seeds)
    print(f"{label}: set seeds {seeds}, start {start}; kept per seed (M = MTT's set, S = its start): {kept}")
    results = {"mtt": mtt, "validated mtt": chosen, start: first, baseline: methods[baseline]}
    for name, res in results.items():
        print(f"  {name:<14} {res.summary.format()} %")
    pairs = dict.fromkeys([("validated mtt", baseline), ("mtt", baseline), ("validated mtt", "mtt"), ("mtt", start)])
    for a, b in pairs:
        d = paired_difference(*common(results[a], results[b]))
        print(f"  {a} - {b}: {d.format()}  ({verdict(a, b, d)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", type=Path, help="one bench_distill log instead of the committed sources")
    ap.add_argument("--start", default="dm", help="with --log: the set MTT started from (dm at CPC 10, herding at 1)")
    ap.add_argument("--baseline", default="herding")
    args = ap.parse_args()
    if args.log:
        report(str(args.log), from_log(args.log), args.start, args.baseline)
        return
    for label, source, start, baseline in SOURCES:
        methods = from_log(EVIDENCE / source) if isinstance(source, str) else \
            from_cells(*source, ("mtt", start, baseline))
        report(label, methods, start, baseline)


if __name__ == "__main__":
    main()
