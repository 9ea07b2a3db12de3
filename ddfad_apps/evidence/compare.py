"""Compare methods on sets made with several seeds, each evaluated with several seeds, under one protocol.

The unit of every interval is the **set seed**: a method's accuracy at set seed ``s`` is the mean over its
evaluation seeds, and the mean, std and t-interval are taken over set seeds.  Why not every (set seed,
evaluation seed) pair: networks trained on the same set share that set's luck, so treating them as independent
would make intervals too narrow whenever sets vary more than networks do (issue 11: random clips from 75.7% to
84.7% across selection seeds).  Each per-set-seed mean still carries the evaluation noise, so the interval covers
both sources.

Evaluation seeds are disjoint blocks per set seed (``set_seed * EVAL_SEED_BLOCK + i``), so a method whose set
does not depend on its seed (herding, the whole training split) is still measured on different networks at each
unit.  Paired differences take method A and method B at the same set seed (same evaluation seeds).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import torch

from ddfad_apps.evidence.protocol import AnySet, Carved, EvalProtocol, Report, SetEvaluation, evaluate_set
from ddfad_apps.evidence.stats import Summary, paired_difference, summarize, verdict
from ddfad_apps.features.dataset import FeatureSet

EVAL_SEED_BLOCK = 1000


def eval_seeds_for(set_seed: int, eval_seeds: int) -> list[int]:
    """The evaluation seeds used on the set made with ``set_seed``."""
    if not 0 < eval_seeds <= EVAL_SEED_BLOCK:
        raise ValueError(f"eval_seeds must be in 1..{EVAL_SEED_BLOCK}, got {eval_seeds}")
    return [set_seed * EVAL_SEED_BLOCK + i for i in range(eval_seeds)]


@dataclass
class MethodResult:
    """One method: its evaluation at every set seed."""

    name: str
    runs: dict[int, SetEvaluation]

    @property
    def per_set_seed(self) -> dict[int, float]:
        """Mean accuracy over the evaluation seeds, per set seed (the unit of the interval)."""
        return {s: ev.summary.mean for s, ev in self.runs.items()}

    @property
    def summary(self) -> Summary:
        return summarize([self.per_set_seed[s] for s in sorted(self.runs)])

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.summary.as_dict(), "unit": "set seed",
                "per_set_seed": {str(s): a for s, a in sorted(self.per_set_seed.items())},
                "runs": {str(s): ev.as_dict() for s, ev in sorted(self.runs.items())}}


@dataclass
class Comparison:
    """Every method's result and the paired difference of every pair of methods (first named minus second)."""

    methods: dict[str, MethodResult]
    differences: dict[tuple[str, str], Summary]
    protocol: dict[str, Any]

    def verdicts(self) -> list[str]:
        return [verdict(a, b, d) for (a, b), d in self.differences.items()]

    def table(self) -> str:
        """Methods (mean +- std [95% interval] over set seeds) and the paired differences with their verdicts."""
        width = max(len(n) for n in self.methods) + 2
        lines = [f"{'set':<{width}} accuracy % (mean +- std [95% CI], unit = set seed)   chosen lr per set seed"]
        for name, res in self.methods.items():
            lrs = ", ".join(f"{ev.lr:g}" for _, ev in sorted(res.runs.items()))
            lines.append(f"{name:<{width}} {res.summary.format():<52} {lrs}")
        if self.differences:
            lines.append("paired differences (same set and evaluation seeds), points:")
            for (a, b), d in self.differences.items():
                lines.append(f"  {a} - {b}: {d.format()}")
            lines += [f"  {v}" for v in self.verdicts()]
        return "\n".join(lines)

    def add(self, result: MethodResult, pairs: Sequence[tuple[str, str]]) -> None:
        """Add a method derived from the evaluated ones (e.g. :func:`validated_choice`) and its paired differences."""
        if result.name in self.methods:
            raise ValueError(f"method {result.name!r} is already in the comparison")
        unknown = {m for p in pairs for m in p} - set(self.methods) - {result.name}
        if unknown:
            raise ValueError(f"pairs name unknown method(s) {sorted(unknown)}; methods: {[*self.methods, result.name]}")
        self.methods[result.name] = result
        for a, b in pairs:
            self.differences[a, b] = paired_difference(self.methods[a].per_set_seed, self.methods[b].per_set_seed)

    def as_dict(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "unit": "set seed",
                "methods": {n: r.as_dict() for n, r in self.methods.items()},
                "differences": [{"a": a, "b": b, **d.as_dict(), "verdict": verdict(a, b, d)}
                                for (a, b), d in self.differences.items()]}


def _plain(d: dict[str, Any]) -> Any:
    """``d`` as it reads back from JSON (tuples become lists), to compare a stored protocol with a live one."""
    return json.loads(json.dumps(d))


def _by_seed(name: str, sets: Sequence[AnySet] | Mapping[int, AnySet]) -> dict[int, AnySet]:
    out = dict(sets) if isinstance(sets, Mapping) else dict(enumerate(sets))
    if not out:
        raise ValueError(f"method {name!r} has no sets")
    return out


def compare(
    sets: Mapping[str, Sequence[AnySet] | Mapping[int, AnySet]], carved: Carved, test: FeatureSet,
    protocol: EvalProtocol, eval_seeds: int = 2, device: torch.device | str = "cpu",
    pairs: Sequence[tuple[str, str]] | None = None, report: Report | None = None, progress: bool = False,
    evaluations: Mapping[tuple[str, int], SetEvaluation] | None = None,
) -> Comparison:
    """Evaluate ``sets`` (``{method: [set made with seed 0, seed 1, ...]}`` or ``{method: {set_seed: set}}``), every
    set with :func:`evaluate_set` and ``eval_seeds`` networks; paired differences for ``pairs`` (default: every
    pair, in the order given).  Every method must give the same set seeds, so that differences are paired.
    ``evaluations`` (``{(method, set_seed): evaluation}``) are used instead of evaluating those sets again, e.g.
    results kept on disk by a resumable benchmark; they must use the same protocol.
    """
    by_method = {name: _by_seed(name, s) for name, s in sets.items()}
    seed_sets = {name: sorted(s) for name, s in by_method.items()}
    first = next(iter(seed_sets.values()))
    if any(s != first for s in seed_sets.values()):
        raise ValueError(f"every method needs sets made with the same seeds to pair them: {seed_sets}")
    methods: dict[str, MethodResult] = {}
    live_protocol = _plain(protocol.as_dict())
    for name, per_seed in by_method.items():
        runs = {}
        for set_seed in first:
            done = (evaluations or {}).get((name, set_seed))
            if done is not None:
                if _plain(done.protocol) != live_protocol or done.seeds != eval_seeds_for(set_seed, eval_seeds):
                    raise ValueError(f"the evaluation given for {name} at set seed {set_seed} used another protocol "
                                     f"or other evaluation seeds")
                runs[set_seed] = done
            else:
                runs[set_seed] = evaluate_set(per_seed[set_seed], carved, test, protocol,
                                              eval_seeds_for(set_seed, eval_seeds), device, name, progress)
            if report is not None:
                report(f"  set seed {set_seed}: {runs[set_seed]}")
        methods[name] = MethodResult(name, runs)
    pairs = list(pairs) if pairs is not None else list(combinations(methods, 2))
    unknown = {m for p in pairs for m in p} - set(methods)
    if unknown:
        raise ValueError(f"pairs name unknown method(s) {sorted(unknown)}; methods: {list(methods)}")
    diffs = {(a, b): paired_difference(methods[a].per_set_seed, methods[b].per_set_seed) for a, b in pairs}
    return Comparison(methods, diffs, protocol.as_dict())


def validation_score(ev: SetEvaluation) -> float:
    """The set's accuracy on the validation carve at the learning rate the protocol chose for it (NaN if unknown)."""
    score = ev.val_scores.get(ev.lr)
    return math.nan if score is None else float(score)


def validated_choice(result: MethodResult, start: MethodResult, name: str | None = None) -> MethodResult:
    """Per set seed, ``result``'s evaluation or its ``start`` set's, whichever scored higher on the validation carve.

    Why: a distilled set can lose to the real or DM clips it started from on speakers it never saw (FSDD, CPC 10:
    MTT - its DM start -3.15, -4.44, -2.74 on three held-out-speaker splits), while it gains on seen ones.  The
    protocol already scores both on the validation carve (a whole training speaker on grouped folders) to pick their
    learning rates, so keeping the better one uses no test clip and costs nothing.  A tie or a missing score keeps
    ``result``.  The chosen evaluation keeps its own name, so ``runs[s].name`` says which set was kept.
    """
    missing = sorted(set(result.runs) - set(start.runs))
    if missing:
        raise ValueError(f"{start.name} has no evaluation at set seed(s) {missing} of {result.name}")
    runs = {s: start.runs[s] if validation_score(start.runs[s]) > validation_score(ev) else ev
            for s, ev in sorted(result.runs.items())}
    return MethodResult(name or f"{result.name}|val", runs)
