"""Compare two runs of the paper report, cell by cell: does a fresh run reproduce the committed one?

    python scripts/compare_report_runs.py --a docs/paper --b /tmp/fresh-paper [--size default]

Why: the committed cells were made across sessions and machines; a new user's run makes them again from nothing
(its own features, experts and sets).  For every Table I set cell both folders hold (same settings; a run made
with another number of set seeds - FSDD's 3 before it went to 5 - is paired on the seeds both have), this prints
each run's mean, the paired difference b - a over those set seeds, and then every paired verdict of Table I in
run a beside the same verdict in run b, marking those that changed.  Nothing is computed: it reads the
``raw/<cell>.json`` records.
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path
from typing import Any


# Settings that say how many set seeds a cell made or which networks evaluated it, not how its sets are made or
# scored on ConvNet: two cells differing only in these hold the same seed's sets and ConvNet evaluations.
SEED_FIELDS = ("set_seeds", "first_set_seed", "target_seeds", "targets")


def per_seed(record: dict[str, Any], target: str = "convnet") -> dict[str, float]:
    return record["result"]["evaluations"][target]["per_set_seed"]


def find_record(folder: Path, cell: Any) -> dict[str, Any] | None:
    """The record of ``cell`` in ``folder``: the same key, else a cell of the same settings but for
    :data:`SEED_FIELDS` (the same sets, more or fewer of them)."""
    path = folder / "raw" / f"{cell.key}.json"
    if path.exists():
        return json.loads(path.read_text())
    loose = {k: v for k, v in cell.params.items() if k not in SEED_FIELDS}
    for other in sorted((folder / "raw").glob(f"{cell.kind}-{cell.name}-*.json")):
        record = json.loads(other.read_text())
        if {k: v for k, v in record.get("settings", {}).items() if k not in SEED_FIELDS} == loose:
            return record
    return None


def outcome(sentence: str) -> str:
    """What a verdict says, without its numbers: "x beats y" or "indistinguishable"."""
    return sentence.split(" by ")[0] if " beats " in sentence else "indistinguishable"


def main(argv: list[str] | None = None) -> list[str]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", type=Path, required=True, help="one report folder (e.g. the committed docs/paper)")
    ap.add_argument("--b", type=Path, required=True, help="the other (e.g. a fresh run)")
    ap.add_argument("--size", default="default", help="the size whose Table I is compared")
    args = ap.parse_args(argv)

    from ddfad_apps.evidence import paired_difference, summarize, verdict
    from ddfad_apps.paper.cells import SIZES, declare, find_set

    size = SIZES[args.size]
    cells = declare(size)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        print(line)

    t1 = size.table1
    for d in t1["datasets"]:
        for c in t1["cpcs"]:
            both: dict[str, tuple[dict[str, float], dict[str, float]]] = {}
            for m in t1["methods"]:
                cell = find_set(cells, d, m, c)
                ra, rb = find_record(args.a, cell), find_record(args.b, cell)
                if ra is None or rb is None:
                    say(f"{d} CPC {c} {m}: only in {'b' if ra is None and rb else 'a' if ra else 'neither'}")
                    continue
                a, b = per_seed(ra), per_seed(rb)
                common = sorted(set(a) & set(b), key=int)
                note = "" if set(a) == set(b) else f" (the seeds both runs have: {', '.join(common)})"
                a, b = {s: a[s] for s in common}, {s: b[s] for s in common}
                both[m] = (a, b)
                diff = paired_difference(b, a)
                say(f"{d} CPC {c} {m}: a {summarize(list(a.values())).format()} | b "
                    f"{summarize(list(b.values())).format()} | b - a {100 * diff.mean:+.2f} "
                    f"[{100 * diff.low:+.2f}, {100 * diff.high:+.2f}] over {diff.n} set seeds{note}")
            for x, y in combinations(both, 2):
                va = verdict(x, y, paired_difference(both[x][0], both[y][0]))
                vb = verdict(x, y, paired_difference(both[x][1], both[y][1]))
                same = outcome(va) == outcome(vb)
                say(f"  {d} CPC {c}: a: {va}")
                say(f"  {' ' * len(d)}        b: {vb}" + ("" if same else "   <- CHANGED"))
    return lines


if __name__ == "__main__":
    main()
