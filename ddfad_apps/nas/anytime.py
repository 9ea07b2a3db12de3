"""Which architecture, how fast: search strategies under one CPU-seconds budget, scored by the ground truth.

The practitioner's question is not "does the proxy rank like the truth" but "given C CPU-seconds, how good is the
architecture I end up with?".  Three strategies spend the same budget:

* ``proxy-grid``: every candidate trained on a proxy (small set or early stopping) in a seeded random order;
* ``proxy-tpe``: Optuna's TPE choosing candidates, each trained on the proxy;
* ``hyperband``: Optuna's TPE with a :class:`optuna.pruners.HyperbandPruner` on the whole data: each trial trains
  the ground truth's recipe and reports its validation accuracy after every epoch; a pruned trial costs the
  epochs it ran.

Every strategy chooses on a **validation split carved from the training set** (:meth:`EvalProtocol.carve`;
proxy sets are made from the other part), never on the test set.  After each finished evaluation the candidate
with the best validation score so far is "the pick"; the curve is the pick's **ground truth** (whole training
set, test accuracy, from :mod:`ddfad_apps.nas.truths`) against the CPU seconds spent.

**Clock**: CPU seconds, ``time.process_time()`` of this process (all its threads; torch threads fixed by the
caller), counted over training and validation of each trial plus the sampler's own time; a proxy set's making
cost (recorded in CPU seconds when it was made) is charged at time 0 when ``set_cost`` is true.  Evaluation that
would finish past the budget does not count.

**Seeds vary the search, not the weights**: an architecture's training is seeded the same in every run, so it is
trained once per process and replayed at its measured cost when another seed (or strategy) asks for it again
(``memo``); the clock charges exactly what a fresh run would have spent.  Only Optuna's public API is used
(``study.ask``/``tell``, ``trial.report``/``should_prune``).
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
import torch

from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.nas.proxies import ProxySpec
from ddfad_apps.nas.space import ARCH_PARAM, build
from search_spaces import Config, SearchSpace

STRATEGIES: tuple[str, ...] = ("proxy-grid", "proxy-tpe", "hyperband")
MAX_REPEATS = 200  # consecutive repeated proposals before a sampler is taken to have nothing new to offer


@dataclass
class Event:
    """One finished evaluation: when (CPU s since the start), which architecture, its validation score."""

    seconds: float
    arch: str
    score: float


@dataclass
class SearchRun:
    """One strategy under one seed: its evaluations in order and its counts."""

    strategy: str
    seed: int
    budget: float
    set_seconds: float = 0.0
    events: list[Event] = field(default_factory=list)
    spent: float = 0.0
    pruned: int = 0
    repeats: int = 0
    exhausted: bool = False

    def picks(self) -> list[tuple[float, str]]:
        """``(seconds, arch)`` each time the best validation score so far changes (ties keep the earlier pick)."""
        out, best = [], -math.inf
        for e in self.events:
            if e.score > best:
                best = e.score
                out.append((e.seconds, e.arch))
        return out


class Trainer:
    """Trains candidates once per process (seeded), remembering scores and measured CPU seconds for replays."""

    def __init__(self, space: SearchSpace, train: FeatureSet, val: FeatureSet, spec: ProxySpec, *,
                 learned_lr: float | None = None, device: str = "cpu") -> None:
        self.space, self.train, self.val, self.spec = space, train, val, spec
        self.learned_lr, self.device = learned_lr, device
        self.trained = 0  # trainings actually run (not replays)
        self._scores: dict[str, tuple[float, float]] = {}
        self._curves: dict[str, list[tuple[float, float]]] = {}

    def _model(self, arch: str) -> tuple[Config, torch.nn.Module | None]:
        config = self.space.parse(arch)
        torch.manual_seed(self.spec.seed)
        try:
            return config, build(self.space, config, self.train.num_classes, self.train.input_shape)
        except (ValueError, RuntimeError):
            return config, None  # cannot process the input: scores -inf at no training cost

    def warm_up(self, archs: Sequence[str]) -> None:
        """One untimed forward and backward pass of each architecture (seeded as ever), so one-off start-up costs
        (lazy initialisation of torch's kernels, first allocations) are not charged to whichever trial is first."""
        from ddfad_apps.nas.objective import train_and_score

        first = True
        for arch in archs:
            config, model = self._model(arch)
            if model is None:
                continue
            if first:  # the whole recipe once on a few clips: its lazy imports and set-up
                few = self.train.subset(list(range(min(len(self.train), 16))))
                train_and_score(replace(self.spec, name="warm-up", epochs=1), self.space, config, model, few,
                                self.val, seed=self.spec.seed, device=self.device, learned_lr=self.learned_lr)
                first = False
            model(self.train.features[:8].to(self.device)).sum().backward()

    def score(self, arch: str) -> tuple[float, float]:
        """(validation accuracy, CPU seconds) of ``arch`` trained with the whole recipe; -inf when it fails."""
        from ddfad_apps.nas.objective import train_and_score
        from ddfad_apps.training.loops import NonFiniteLossError

        if arch not in self._scores:
            started = time.process_time()
            config, model = self._model(arch)
            acc = -math.inf
            if model is not None:
                self.trained += 1
                try:
                    acc = train_and_score(self.spec, self.space, config, model, self.train, self.val,
                                          seed=self.spec.seed, device=self.device, learned_lr=self.learned_lr)
                except NonFiniteLossError:
                    pass
            self._scores[arch] = (acc, time.process_time() - started)
        return self._scores[arch]

    def curve(self, arch: str, epochs: int) -> list[tuple[float, float]]:
        """(validation accuracy, CPU seconds of that epoch) of the first ``epochs`` epochs of the whole recipe.

        Training stops after ``epochs`` epochs; a later call wanting more retrains from the start (same seed, same
        numbers) and measures the further epochs.  A failing architecture gives a one-epoch curve of -inf.
        """
        from ddfad_apps.nas.objective import train_and_score
        from ddfad_apps.training.loops import NonFiniteLossError

        have = self._curves.get(arch, [])
        if len(have) >= epochs or (have and have[-1][0] == -math.inf):
            return have[:epochs]
        config, model = self._model(arch)
        if model is None:
            self._curves[arch] = [(-math.inf, 0.0)]
            return self._curves[arch]
        curve: list[tuple[float, float]] = []
        last = [time.process_time()]

        class _Enough(Exception):
            pass

        def on_epoch(epoch: int, metrics: dict[str, float]) -> None:
            now = time.process_time()
            curve.append((metrics["test_accuracy"], now - last[0]))
            last[0] = now
            if len(curve) >= epochs:
                raise _Enough

        self.trained += 1
        try:
            train_and_score(self.spec, self.space, config, model, self.train, self.val, seed=self.spec.seed,
                            device=self.device, on_epoch=on_epoch)
        except _Enough:
            pass
        except NonFiniteLossError:
            curve.append((-math.inf, time.process_time() - last[0]))
        # keep the measured seconds of epochs measured before (a replay charges what the first run cost)
        merged = have + curve[len(have):]
        self._curves[arch] = merged
        return merged[:epochs]


def _quiet_study(sampler: optuna.samplers.BaseSampler, pruner: optuna.pruners.BasePruner | None = None
                 ) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)


def _ask(study: optuna.Study, archs: Sequence[str]) -> optuna.trial.Trial:
    return study.ask({ARCH_PARAM: optuna.distributions.CategoricalDistribution(list(archs))})


def run_proxy(strategy: str, archs: Sequence[str], trainer: Trainer, budget: float, seed: int,
              set_seconds: float = 0.0) -> SearchRun:
    """``proxy-grid`` (seeded random order) or ``proxy-tpe`` over ``archs``, each trained by ``trainer``."""
    run = SearchRun(strategy, seed, budget, set_seconds, spent=set_seconds)
    if strategy == "proxy-grid":
        order = list(archs)
        random.Random(seed).shuffle(order)
        for arch in order:
            acc, cost = trainer.score(arch)
            if run.spent + cost > budget:
                break
            run.spent += cost
            run.events.append(Event(run.spent, arch, acc))
        else:
            run.exhausted = True
        return run
    if strategy != "proxy-tpe":
        raise ValueError(f"unknown proxy strategy {strategy!r}")
    study = _quiet_study(optuna.samplers.TPESampler(seed=seed))
    for trial, arch, repeats in _new_proposals(study, archs, run, budget):
        acc, cost = trainer.score(arch)
        if run.spent + cost > budget:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            break
        run.spent += cost
        repeats.seen[arch] = trial.number
        study.tell(trial, acc if math.isfinite(acc) else None,
                   state=optuna.trial.TrialState.COMPLETE if math.isfinite(acc) else optuna.trial.TrialState.FAIL)
        run.events.append(Event(run.spent, arch, acc))
    return run


class _Repeats:
    """A sampler's proposals of architectures it already tried: each is told to the study as FAIL naming the trial
    that holds it (no training: the same numbers again), and the search ends once every architecture was tried or
    ``MAX_REPEATS`` repeats came in a row."""

    def __init__(self, n_archs: int) -> None:
        self.n_archs, self.in_a_row = n_archs, 0
        self.seen: dict[str, int] = {}

    def handled(self, study: optuna.Study, trial: optuna.trial.Trial, arch: str, run: SearchRun) -> bool:
        """True when ``arch`` is a repeat (recorded; ``run.exhausted`` set when the search should stop)."""
        if arch not in self.seen:
            self.in_a_row = 0
            return False
        trial.set_user_attr("duplicate_of", self.seen[arch])
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        run.repeats += 1
        self.in_a_row += 1
        run.exhausted = len(self.seen) == self.n_archs or self.in_a_row >= MAX_REPEATS
        return True


def _new_proposals(study: optuna.Study, archs: Sequence[str], run: SearchRun,
                   budget: float) -> Iterator[tuple[optuna.trial.Trial, str, _Repeats]]:
    """Ask ``study`` for architectures while ``budget`` CPU seconds last (asking is charged too); repeats are
    recorded and skipped (:class:`_Repeats`), and the proposals end when the sampler has nothing new."""
    repeats = _Repeats(len(archs))
    while run.spent < budget:
        started = time.process_time()
        trial = _ask(study, archs)
        arch = trial.params[ARCH_PARAM]
        run.spent += time.process_time() - started
        if repeats.handled(study, trial, arch, run):
            if run.exhausted:
                return
            continue
        yield trial, arch, repeats


def _rung_ceiling(epoch: int, min_epochs: int, factor: int, epochs: int) -> int:
    """The first Hyperband rung (``min_epochs * factor**k``, or the last epoch) at or after ``epoch``: training is
    run up to there in one go, so a trial continued rung by rung costs at most ~1.5x its epochs in real time
    (the clock charges each epoch once, as measured)."""
    rung = min_epochs
    while rung < epoch:
        rung *= factor
    return min(rung, epochs)


def run_hyperband(archs: Sequence[str], trainer: Trainer, budget: float, seed: int, *, min_epochs: int = 1,
                  reduction_factor: int = 3) -> SearchRun:
    """Optuna TPE + Hyperband on the whole data (``trainer.spec`` = the ground truth's recipe, max resource its
    epochs): a trial reports validation accuracy after each epoch and is pruned when the pruner says so."""
    epochs = trainer.spec.epochs
    run = SearchRun("hyperband", seed, budget)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        pruner = optuna.pruners.HyperbandPruner(min_resource=min_epochs, max_resource=epochs,
                                                reduction_factor=reduction_factor)
    study = _quiet_study(optuna.samplers.TPESampler(seed=seed), pruner)
    for trial, arch, repeats in _new_proposals(study, archs, run, budget):
        repeats.seen[arch] = trial.number
        state, value = optuna.trial.TrialState.COMPLETE, None
        for epoch in range(1, epochs + 1):
            curve = trainer.curve(arch, _rung_ceiling(epoch, min_epochs, reduction_factor, epochs))[:epoch]
            acc, cost = curve[-1]
            if run.spent + cost > budget:
                run.spent = budget
                state = optuna.trial.TrialState.FAIL  # unfinished when the budget ran out
                break
            run.spent += cost
            if not math.isfinite(acc) or len(curve) < epoch:
                state = optuna.trial.TrialState.FAIL
                break
            started = time.process_time()
            trial.report(acc, epoch)
            prune = trial.should_prune()
            run.spent += time.process_time() - started
            if prune:
                state = optuna.trial.TrialState.PRUNED
                run.pruned += 1
                break
            value = acc
        if state == optuna.trial.TrialState.COMPLETE:
            study.tell(trial, value)
            run.events.append(Event(run.spent, arch, value))
        else:
            study.tell(trial, state=state)
            if run.spent >= budget:
                break
    return run


def anytime_curve(run: SearchRun, truth: dict[str, float]) -> list[tuple[float, float, str]]:
    """``(seconds, ground truth of the pick, pick)`` each time the pick changes; the ground truth of the pick is
    non-decreasing only if the strategy's choices agree with the truth, so it is not forced to be (see
    :func:`best_so_far`)."""
    return [(t, truth[a], a) for t, a in run.picks()]


def best_so_far(curve: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The anytime curve: the best ground truth among the picks made so far (monotone non-decreasing).

    A user keeps every architecture a search has picked and may deploy the best of them; this is the envelope the
    issue asks for, "the ground-truth accuracy of the best architecture found so far"."""
    out, best = [], -math.inf
    for t, g, a in curve:
        g = g if math.isfinite(g) else -math.inf
        if g > best:
            best = g
            out.append((t, g, a))
    return out


def time_to_reach(curve: list[tuple[float, float, str]], target: float) -> float:
    """First CPU second at which ``curve`` reaches ``target`` (inf when it never does)."""
    return next((t for t, g, _ in curve if g >= target), math.inf)


def run_strategies(strategies: Sequence[str], archs: Sequence[str], seeds: Sequence[int], budget: float, *,
                   proxy_trainers: dict[str, tuple[Trainer, float]], whole: Trainer,
                   progress: Callable[[str], None] | None = None) -> list[SearchRun]:
    """Every strategy (proxy strategies once per proxy in ``proxy_trainers``: name -> (trainer, set seconds))
    under every seed."""
    runs = []
    for trainer in [whole, *(t for t, _ in proxy_trainers.values())]:
        trainer.warm_up(archs)
    for strategy in strategies:
        for seed in seeds:
            if strategy == "hyperband":
                runs.append(run_hyperband(archs, whole, budget, seed))
            else:
                for name, (trainer, set_seconds) in proxy_trainers.items():
                    run = run_proxy(strategy, archs, trainer, budget, seed, set_seconds)
                    run.strategy = f"{strategy}/{name}"
                    runs.append(run)
            if progress:
                progress(f"{runs[-1].strategy} seed {seed}: {len(runs[-1].events)} evaluated in "
                         f"{runs[-1].spent:.1f} CPU s")
    return runs


def summarize_runs(runs: Sequence[SearchRun], truth: dict[str, float], target: float) -> dict[str, Any]:
    """Per strategy: the curve of each seed and the time to reach ``target`` with its interval over seeds."""
    from ddfad_apps.evidence.stats import summarize

    out: dict[str, Any] = {}
    for run in runs:
        entry = out.setdefault(run.strategy, {"seeds": {}, "times": []})
        curve = best_so_far(anytime_curve(run, truth))
        t = time_to_reach(curve, target)
        entry["times"].append(t)
        entry["seeds"][str(run.seed)] = {
            "curve": [{"seconds": s, "truth": g, "arch": a} for s, g, a in curve],
            "picks": [{"seconds": s, "truth": g, "arch": a} for s, g, a in anytime_curve(run, truth)],
            "evaluated": len(run.events), "pruned": run.pruned, "repeats": run.repeats, "spent": run.spent,
            "set_seconds": run.set_seconds, "exhausted": run.exhausted,
            "time_to_target": None if math.isinf(t) else t}
    for entry in out.values():
        times = entry.pop("times")
        reached = [t for t in times if math.isfinite(t)]
        entry["reached"] = f"{len(reached)} of {len(times)} seeds"
        # with a seed that never reached the target the mean time is undefined (censored): no interval then
        entry["time_to_target"] = summarize(reached).as_dict() if len(reached) == len(times) else None
        entry["time_to_target_median"] = (sorted(times)[len(times) // 2] if len(reached) * 2 > len(times)
                                          else None)
    return out


def curve_figure(summary: dict[str, Any], budget: float, target: float, best: float, title: str = ""):
    """Anytime curves: ground truth of the best pick so far against CPU seconds, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, entry) in enumerate(summary.items()):
        for j, seed in enumerate(entry["seeds"].values()):
            pts = seed["curve"]
            if not pts:
                continue
            xs = [p["seconds"] for p in pts] + [budget]
            ys = [100 * p["truth"] for p in pts] + [100 * pts[-1]["truth"]]
            ax.step(xs, ys, where="post", color=colors[i % len(colors)], alpha=0.7,
                    label=name if j == 0 else None)
    ax.axhline(100 * target, color="grey", ls="--", lw=1, label=f"target {100 * target:.2f}%")
    ax.axhline(100 * best, color="black", ls=":", lw=1, label=f"best sampled {100 * best:.2f}%")
    ax.set_xlabel("CPU seconds (process time)")
    ax.set_ylabel("ground-truth accuracy of best pick (%)")
    ax.set_xlim(0, budget)
    ax.set_title(title or "anytime architecture search")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig
