"""One evaluation protocol for every set: distilled, coreset or the whole training split.

Why: a distilled set trained at its own learned learning rate against real clips trained at a fixed 0.01 is not a
fair comparison (issue 11 measured MTT doing better at a lower rate than its learned one).  Here every set goes
through the same steps:

1. ``protocol.carve(train)`` splits a validation part off the *training* split, stratified by class (whole groups,
   e.g. speakers, when the set knows them), **before** any set is made; sets are distilled or selected from
   ``carved.fit`` only (a set made from the whole training
   split has seen the validation clips: :func:`evaluate_set` refuses a set holding any of them).
2. For each learning rate of ``lr_grid`` (plus the set's learned rate, if it has one, as one extra candidate)
   ``select_seeds`` networks train on the set for ``select_epochs`` epochs and are scored on the validation
   part.  The best rate wins (ties: the lower rate).  With ``extend_edges`` > 0, a winner at or beyond either end
   of the grid (a sign that the grid is too narrow for that set) adds the next rate past that end, one grid step
   further (the grid's geometric step), up to ``extend_edges`` times a side.  The test split is not used.
3. ``seeds`` fresh networks train at that rate for ``epochs`` epochs and are tested on the test split.

The result carries every seed's accuracy, mean, std, 95% t-interval, the chosen rate, the grid's validation
scores and the protocol itself (``as_dict``), so JSON and MLflow record how each number was made.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from ddfad_apps.data.splits import stratified_group_split, stratified_split
from ddfad_apps.distill.compat import check_compatible
from ddfad_apps.distill.evaluate import CROSS_ARCH_KWARGS, EvalSettings, eval_settings_for, train_on_set
from ddfad_apps.distill.synthetic_set import SyntheticSet
from ddfad_apps.evidence.stats import Summary, summarize
from ddfad_apps.features.dataset import FeatureSet, row_groups
from ddfad_apps.training.loops import NonFiniteLossError, accuracy

PROTOCOL_NAME = "lr-grid-on-carved-validation"
PROTOCOL_VERSION = 1
# Selection networks use seeds far from the evaluation seeds, so the tested networks are fresh draws.
SELECT_SEED_OFFSET = 1_000_000

AnySet = SyntheticSet | FeatureSet
Report = Callable[[str], None]


@dataclass
class Carved:
    """The training split cut in two: ``fit`` (make sets from this) and ``val`` (choose the learning rate on this)."""

    fit: FeatureSet
    val: FeatureSet
    fit_index: list[int]
    val_index: list[int]
    fraction: float
    seed: int
    groups: tuple[int, int] | None = None  # (fit, val) group counts of a grouped carve

    def as_dict(self) -> dict[str, Any]:
        out = {"fit_clips": len(self.fit), "val_clips": len(self.val), "val_fraction": self.fraction,
               "carve_seed": self.seed, "stratified": True}
        if self.groups is not None:
            out.update(grouped=True, fit_groups=self.groups[0], val_groups=self.groups[1])
        return out


@dataclass(frozen=True)
class EvalProtocol:
    """Settings of the protocol (see the module docstring).  ``select_epochs=None`` selects with ``epochs``."""

    lr_grid: tuple[float, ...] = (0.003, 0.01, 0.03)
    use_learned_lr: bool = True
    val_fraction: float = 0.1
    carve_seed: int = 0
    select_epochs: int | None = None
    select_seeds: int = 1
    epochs: int = 300
    model: str = "convnet"
    model_kwargs: dict[str, Any] = field(default_factory=lambda: {"width": 64})
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    augment: bool = True
    noise_std: float = 0.0
    extend_edges: int = 0  # grid steps a winner at or past the grid's edge may add beyond it, per side

    def __post_init__(self) -> None:
        if not self.lr_grid or any(not (lr > 0 and math.isfinite(lr)) for lr in self.lr_grid):
            raise ValueError(f"lr_grid must hold positive learning rates, got {self.lr_grid}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.select_seeds < 1 or self.epochs < 1 or (self.select_epochs is not None and self.select_epochs < 1):
            raise ValueError("select_seeds, epochs and select_epochs must be at least 1")
        if self.extend_edges < 0:
            raise ValueError(f"extend_edges must be 0 or more, got {self.extend_edges}")
        if self.extend_edges and len(set(self.lr_grid)) < 2:
            raise ValueError("extend_edges needs a grid of at least two rates (its step is the grid's)")

    @classmethod
    def for_preset(cls, preset: str = "fast", model: str = "convnet", width: int | None = None,
                   epochs: int | None = None, **changes: Any) -> EvalProtocol:
        """The protocol with a preset's training recipe (:func:`~ddfad_apps.distill.evaluate.eval_settings_for`);
        ResNet18 and VGG11 take their CPU-sized :data:`CROSS_ARCH_KWARGS`."""
        base = eval_settings_for(preset, width, epochs)
        kwargs = dict(CROSS_ARCH_KWARGS[model]) if model in CROSS_ARCH_KWARGS else base.model_kwargs
        return cls(epochs=base.epochs, model=model, model_kwargs=kwargs, batch_size=base.batch_size,
                   momentum=base.momentum, weight_decay=base.weight_decay, augment=base.augment, **changes)

    def with_changes(self, **changes: Any) -> EvalProtocol:
        return replace(self, **changes)

    def settings(self, epochs: int) -> EvalSettings:
        """The training recipe of one network (the learning rate is passed separately)."""
        return EvalSettings(epochs=epochs, lr=None, batch_size=self.batch_size, momentum=self.momentum,
                            weight_decay=self.weight_decay, augment=self.augment, noise_std=self.noise_std,
                            model_kwargs=dict(self.model_kwargs))

    def candidates(self, learned_lr: float | None) -> list[tuple[float, str]]:
        """``(lr, source)`` in increasing lr: the grid for every set, the learned rate as one extra candidate."""
        out = {float(lr): "grid" for lr in self.lr_grid}
        if self.use_learned_lr and learned_lr is not None and math.isfinite(learned_lr) and learned_lr > 0:
            out.setdefault(float(learned_lr), "learned")
        return sorted(out.items())

    @property
    def grid_step(self) -> float:
        """The grid's geometric step (its span's ratio per interval), by which an edge winner is extended."""
        grid = sorted(set(float(lr) for lr in self.lr_grid))
        return (grid[-1] / grid[0]) ** (1.0 / (len(grid) - 1))

    def carve(self, train: FeatureSet) -> Carved:
        """Stratified, seeded split of ``train`` into ``fit`` and ``val`` (disjoint, every class on both sides).

        When ``train`` knows each clip's group (``meta["groups"]``: a folder set's group pattern or manifest) whole
        groups are carved, so no speaker is on both sides (stratified by class as far as groups allow).
        """
        counts = torch.bincount(train.labels, minlength=train.num_classes)
        if int(counts.min()) < 2:
            raise ValueError(f"carving a validation split needs at least 2 training clips per class; class "
                             f"{train.classes[int(counts.argmin())]!r} has {int(counts.min())}")
        groups = row_groups(train)
        if groups is None:
            fit_idx, val_idx = stratified_split(train.labels.tolist(), self.val_fraction, self.carve_seed)
            sizes = None
        else:
            fit_idx, val_idx = stratified_group_split(train.labels.tolist(), groups, self.val_fraction,
                                                      self.carve_seed)
            sizes = (len({groups[i] for i in fit_idx}), len({groups[i] for i in val_idx}))
        return Carved(train.subset(fit_idx), train.subset(val_idx), fit_idx, val_idx, self.val_fraction,
                      self.carve_seed, sizes)

    def as_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        if not self.extend_edges:  # so results recorded before the option still match a protocol without it
            del fields["extend_edges"]
        return {"name": PROTOCOL_NAME, "version": PROTOCOL_VERSION, **fields, "lr_grid": list(self.lr_grid)}


@dataclass
class SetEvaluation:
    """What :func:`evaluate_set` measured on one set."""

    name: str
    model: str
    seeds: list[int]
    accuracies: list[float]
    lr: float
    lr_source: str
    val_scores: dict[float, float]
    learned_lr: float | None
    protocol: dict[str, Any]
    carve: dict[str, Any]
    set_info: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return summarize(self.accuracies)

    @property
    def by_seed(self) -> dict[int, float]:
        return dict(zip(self.seeds, self.accuracies))

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, **self.summary.as_dict(), "seeds": self.seeds,
                "accuracies": self.accuracies, "lr": self.lr, "lr_source": self.lr_source,
                "val_scores": {f"{lr:g}": None if math.isnan(s) else s for lr, s in self.val_scores.items()}, "learned_lr": self.learned_lr,
                "set": self.set_info, "carve": self.carve, "seconds": self.seconds, "protocol": self.protocol}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SetEvaluation:
        """Read back :meth:`as_dict`.  Its validation scores are keyed by the lr as printed (``%g``: 0.0395786 for a
        learned 0.039578575...); the key of the chosen rate gets that rate back, so ``val_scores[lr]`` still works."""
        lr = float(d["lr"])
        scores = {lr if math.isclose(float(k), lr, rel_tol=1e-5) else float(k): math.nan if s is None else float(s)
                  for k, s in d["val_scores"].items()}
        return cls(d["name"], d["model"], [int(s) for s in d["seeds"]], [float(a) for a in d["accuracies"]],
                   lr, d["lr_source"], scores, d["learned_lr"], d["protocol"], d["carve"], d["set"],
                   d.get("seconds", {}))

    def __str__(self) -> str:
        grid = ", ".join(f"{lr:g}: {100 * s:.1f}" for lr, s in self.val_scores.items())
        return (f"{self.name} ({self.model}): {self.summary.format()} % over {len(self.seeds)} seeds at lr "
                f"{self.lr:g} ({self.lr_source}; validation {grid})")


def _row_digests(features: torch.Tensor) -> set[bytes]:
    rows = features.detach().cpu().contiguous().flatten(1)
    return {hashlib.blake2b(r.numpy().tobytes(), digest_size=16).digest() for r in rows}


def check_not_from_validation(data: FeatureSet, carved: Carved, name: str = "the set") -> None:
    """Refuse a set that holds clips of the validation part: it was made from the whole training split, so the
    learning rate would be chosen on clips the set has seen.  (Catches real-clip sets; a distilled set that moved
    away from its starting clips cannot be checked this way, hence the rule: make every set from ``carved.fit``.)
    A clip whose exact copy is in ``fit`` too may have been drawn from there: data sets hold byte-identical files
    (RAVDESS: Actor_07's 03-01-03-01-02-01-07 and -02-07), and the carve can put one copy on each side.
    """
    val_only = _row_digests(carved.val.features) - _row_digests(carved.fit.features)
    shared = len(_row_digests(data.features) & val_only)
    if shared:
        raise ValueError(f"{name} holds {shared} clip(s) of the validation split: make sets from "
                         f"protocol.carve(train).fit, not from the whole training split")


def _as_feature_set(data: AnySet, test: FeatureSet) -> tuple[FeatureSet, float | None, dict[str, Any]]:
    if isinstance(data, SyntheticSet):
        check_compatible(data, test)
        info = {"kind": "synthetic", "method": data.method, "clips": len(data), "cpc": data.clips_per_class}
        return data.as_feature_set(), data.lr, info
    if isinstance(data, FeatureSet):
        if data.classes != test.classes or data.input_shape != test.input_shape:
            raise ValueError(f"the set ({data.num_classes} classes, input {data.input_shape}) does not match the "
                             f"test split ({test.num_classes} classes, input {test.input_shape})")
        cpc = int(torch.bincount(data.labels, minlength=data.num_classes).max())
        return data, None, {"kind": "real", "method": data.meta.get("method", "real clips"), "clips": len(data),
                            "cpc": cpc}
    raise TypeError(f"expected a SyntheticSet or FeatureSet, got {type(data).__name__}")


def select_lr(data: FeatureSet, val: FeatureSet, protocol: EvalProtocol, learned_lr: float | None,
              device: torch.device | str = "cpu", progress: bool = False) -> tuple[float, str, dict[float, float]]:
    """Choose the learning rate on ``val``: ``(lr, source, {lr: mean validation accuracy})``.

    A candidate whose loss diverges scores NaN and cannot win; all diverging is an error.  With
    ``protocol.extend_edges``, a winner at or past the low or high end of the grid (and of its extensions so far)
    adds the next rate beyond that end (source ``"extended"``), until the winner is inside or the extensions of that
    side are used up.
    """
    settings = protocol.settings(protocol.select_epochs or protocol.epochs)
    scores: dict[float, float] = {}
    sources: dict[float, str] = {}

    def score(lr: float, source: str) -> None:
        accs = []
        for i in range(protocol.select_seeds):
            try:
                net = train_on_set(data, val.num_classes, val.input_shape, protocol.model, settings, lr,
                                   SELECT_SEED_OFFSET + i, device, progress)
            except NonFiniteLossError:
                accs = [math.nan]
                break
            accs.append(accuracy(net, val))
        scores[lr] = sum(accs) / len(accs)
        sources[lr] = source

    def best() -> float | None:
        finite = [lr for lr, s in scores.items() if not math.isnan(s)]
        return max(finite, key=lambda lr: (scores[lr], -lr)) if finite else None  # ties: the lower rate

    for lr, source in protocol.candidates(learned_lr):
        score(lr, source)
    # the edges are the grid's (and its extensions'): a learned rate just past the grid does not hide an edge winner
    low, high = min(map(float, protocol.lr_grid)), max(map(float, protocol.lr_grid))
    left = {"low": protocol.extend_edges, "high": protocol.extend_edges}
    while (winner := best()) is not None:
        side = "low" if winner <= low else "high" if winner >= high else None
        if side is None or not left[side]:
            break
        left[side] -= 1
        if side == "low":
            low /= protocol.grid_step
            score(low, "extended")
        else:
            high *= protocol.grid_step
            score(high, "extended")
    winner = best()
    if winner is None:
        raise NonFiniteLossError(f"training diverged at every candidate learning rate {sorted(scores)}")
    return winner, sources[winner], dict(sorted(scores.items()))


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    out = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"evaluation seeds must be distinct and at least one, got {seeds}")
    return out


def evaluate_set(
    data: AnySet, carved: Carved, test: FeatureSet, protocol: EvalProtocol, seeds: int | Sequence[int] = 3,
    device: torch.device | str = "cpu", name: str | None = None, progress: bool = False,
) -> SetEvaluation:
    """Choose the lr on ``carved.val`` and test ``seeds`` networks trained at it on ``data`` (see the module doc).

    ``seeds`` is a count (seeds 0..n-1) or the seeds themselves.  Raises ``ValueError`` when ``data`` holds
    validation clips or does not fit ``test``, and
    :class:`~ddfad_apps.distill.compat.IncompatibleSetError` for a distilled set of other data.
    """
    seed_list = _seed_list(seeds)
    feats, learned, info = _as_feature_set(data, test)
    name = name or str(info["method"])
    check_not_from_validation(feats, carved, name)
    t0 = time.perf_counter()
    lr, source, scores = select_lr(feats, carved.val, protocol, learned, device, progress)
    t1 = time.perf_counter()
    settings = protocol.settings(protocol.epochs)
    accs = [accuracy(train_on_set(feats, test.num_classes, test.input_shape, protocol.model, settings, lr, s,
                                  device, progress), test) for s in seed_list]
    seconds = {"selection": t1 - t0, "evaluation": time.perf_counter() - t1}
    return SetEvaluation(name, protocol.model, seed_list, accs, lr, source, scores, learned, protocol.as_dict(),
                         carved.as_dict(), info, seconds)
