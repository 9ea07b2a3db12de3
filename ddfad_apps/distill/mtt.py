"""Matching Training Trajectories (Cazenavette et al., CVPR 2022), the distillation method of DDFAD.

Synthetic clips and a learnable student learning rate are optimised so that ``syn_steps`` SGD steps on the
synthetic set, started from an expert's epoch-``t`` parameters, land near the same expert's epoch ``t + M``
parameters; the distance is normalised by how far the expert itself moved.  The student is a flat parameter
vector run through ``torch.func.functional_call``.  The unroll (``distill/unroll.py``) is differentiated either
exactly at the memory of one step (``unroll="lean"``, the default: the parameters of every step are kept and each
step is recomputed in the backward pass) or by plain autograd through all steps (``unroll="full"``, whose memory
grows with ``syn_steps x batch_syn``); both give the same loss and gradients.

Every setting follows the data, so one rule serves whole data sets and a continual-learning experience of two
classes alike: the inputs are standardised per channel (experts and student alike, mapped back at the end), the
clips move by a normalised gradient step measured in the inputs' spread (``lr_img``), the learned lr moves by a
relative step (``lr_lr``) from the experts' own rate (``lr_init="experts"``), start epochs where
an expert has stopped moving are not matched (``min_move``), and clips that leave the real inputs' range by
``max_range`` spreads stop the run with :class:`SyntheticRangeError`.  Why: with fixed absolute steps, near-still
2-class trajectories (a tiny normalising distance) made the clips explode to +-1e5 for inputs in [0, 1]; and a
starting rate fitted to the experts' first-order move (``lr_init=None``, :meth:`MTTDistiller.fit_lr`) came out 10-20x
below the experts' on 2-class experiences, and clips made to cover the experts' move at that rate did not carry to
new speakers (``strategies.distilled_storage``).
"""

from __future__ import annotations

import copy
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ddfad_apps.distill.augment import AudioAugment
from ddfad_apps.distill.coreset import INITS, Embed, check_init, initial_clips
from ddfad_apps.distill.experts import ExpertBank, InputScale, moving_starts
from ddfad_apps.distill.synthetic_set import SyntheticSet, check_clips_per_class
from ddfad_apps.distill.range_guard import (  # noqa: F401  (SyntheticRangeError, STEP_RULES: re-exported)
    SCALE_FREE_HINT, STEP_RULES, InputRange, SyntheticRangeError, scale_free_step,
)
from ddfad_apps.distill.unroll import match_loss, plan_batches, unroll
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.models import ParamSpec, build_model
from ddfad_apps.storage import atomic_write, load_or_move_aside, locked
from ddfad_apps.training.loops import NonFiniteLossError

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class MTTSettings:
    """The knobs of MTT, named as in the MTT code (``syn_steps`` = N, ``expert_epochs`` = M)."""

    # added after sets were cached: at their defaults they leave cache keys as they were (fingerprint.settings_digest)
    DIGEST_NEUTRAL: ClassVar[tuple[str, ...]] = ("segments", "segment_threads", "backprop_steps")

    syn_steps: int = 20
    expert_epochs: int = 2
    max_start_epoch: int = 6
    # RMS step of the clips per iteration, in units of the inputs' per-channel spread (the gradient is normalised)
    lr_img: float = 0.02
    # relative step of the learned lr per iteration: lr *= exp(-lr_lr * sign(dL/dlr))
    lr_lr: float = 0.01
    # the student's starting lr: a rate; "experts": the rate the experts trained at (the MTT authors' start);
    # None: fitted so that syn_steps steps cover the experts' first-order move (see ``fit_lr``)
    lr_init: float | str | None = "experts"
    batch_syn: int | None = None
    iterations: int = 200
    augment: bool = True
    momentum_img: float = 0.5
    checkpoint_every: int = 25
    # where the clips start: real clips, 'random' (MTT) or 'herding' (closest to the class mean), or 'dm' (the fast DM
    # set of the same data and seed: a start that already matches the classes' embedding means; ``starting_clips``)
    init: str = "random"
    # 'lean': exact meta-gradients holding one step's graph at a time (distill/unroll.py); 'full': autograd through
    # the whole unroll, every step's graph kept (the MTT authors' way; memory grows with syn_steps x batch_syn).
    unroll: str = "lean"
    min_move: float = 0.25  # start epochs whose expert move is under this fraction of the trajectory's largest: skipped
    max_range: float = 10.0  # clips beyond the real inputs' [min, max] +- this many spreads: SyntheticRangeError
    # how the clips and the lr move (STEP_RULES): 'scale_free' as above; 'absolute' is the MTT authors' SGD on the
    # raw meta-gradients (lr_img ~1000, lr_lr ~1e-5 with momentum 0.5, lr_init 0.01: ABSOLUTE_STEPS)
    steps: str = "scale_free"
    # expert segments matched per iteration (their matching losses averaged), each with its own trajectory, start
    # and mini-batches, drawn in order so a seed gives the same run however they are computed
    segments: int = 1
    # threads computing those segments at once, each running torch on one intra-op thread (on the 2-core CPU here,
    # 2 segments in 2 threads ran at 0.95x one unroll on 2 torch threads: scripts/bench_mtt.py --segments 2).
    # None: min(segments, torch's thread count) on a CPU, 1 on a GPU (one stream: threads would only contend)
    segment_threads: int | None = None
    # the meta-gradient flows through the last this many of the syn_steps student steps (the earlier ones are plain
    # SGD steps: truncated back-propagation, distill/unroll.py ``truncated``); None: all of them (exact)
    backprop_steps: int | None = None

    def __post_init__(self) -> None:  # a bad start is refused when the settings are made, not at iteration 0
        check_init(self.init, MTT_INITS)


# The MTT authors' step sizes, which the presets use on whole audio data sets: on FSDD CPC 1 (seed 0, the evidence
# protocol) they gave 78.3% against 67.8% for the scale-free rule, which keeps a 2-class continual-learning
# experience in range instead (docs/continual.md; strategies.DistilledMemory asks for SCALE_FREE_STEPS).
ABSOLUTE_STEPS: dict[str, object] = {"steps": "absolute", "lr_img": 1000.0, "lr_lr": 1e-5, "lr_init": 0.01,
                                     "min_move": 0.0}
SCALE_FREE_STEPS: dict[str, object] = {"steps": "scale_free", "lr_img": 0.02, "lr_lr": 0.01, "lr_init": "experts",
                                       "min_move": 0.25}


def concurrently(fn: Callable[[T], R], items: Sequence[T], threads: int) -> list[R]:
    """``[fn(item) for item in items]``, computed by up to ``threads`` Python threads each running torch on one
    intra-op thread (restored after): parallelism over independent unrolls instead of inside each operator (torch
    releases the GIL inside operators, and autograd runs CPU backward passes on the calling thread)."""
    workers = min(threads, len(items))
    if workers <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(fn, items))
    finally:
        torch.set_num_threads(before)


DM_START = "dm"
MTT_INITS: tuple[str, ...] = (*INITS, DM_START)


def starting_clips(train: FeatureSet, cpc: int, init: str, generator: torch.Generator,
                   embed: Embed | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The features (in ``train``'s normalisation) and labels MTT starts from: real clips chosen by ``init``
    (:func:`~ddfad_apps.distill.coreset.initial_clips`), or with ``init="dm"`` the fast DM set made from ``train``
    with ``generator`` (DM's cost, about a minute at CPC 10 here, is added to MTT's).

    Why a DM start: MTT from herding clips ends above MTT from random ones (a better start is refined further in
    a few hundred iterations), and DM's set is a better start still than herding's on RAVDESS CPC 10 (the report:
    51.00 against 46.04 %).
    """
    check_init(init, MTT_INITS)
    if init == DM_START:
        from ddfad_apps.distill.dm import DMSettings, distill_dm  # dm imports nothing of MTT; kept local: rarely used

        made = distill_dm(train, cpc, DMSettings.fast(), generator=generator, progress=False)
        return made.features, made.labels
    idx = initial_clips(train, cpc, init, generator, embed)
    return train.features[idx], train.labels[idx]


def _student_loss(model, spec: ParamSpec, buffers: dict) -> Callable:
    def loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, (spec.unflatten(flat), buffers), (x,))
        return F.cross_entropy(out, y)

    return loss


class MTTDistiller:
    """One MTT run: holds the synthetic set and its optimisers so it can be checkpointed and resumed."""

    def __init__(self, train: FeatureSet, cpc: int, experts: ExpertBank, settings: MTTSettings, model: str,
                 model_kwargs: dict, device: torch.device | str = "cpu", seed: int = 0,
                 embed: Embed | None = None) -> None:
        check_clips_per_class(train, cpc)
        if settings.backprop_steps is not None and not 1 <= settings.backprop_steps <= settings.syn_steps:
            raise ValueError(f"backprop_steps ({settings.backprop_steps}) must be between 1 and syn_steps "
                             f"({settings.syn_steps}), or None for all")
        self._unroll = unroll(settings.unroll, settings.backprop_steps)
        if not len(experts):
            raise ValueError("MTT needs at least one expert trajectory")
        epochs = experts.trajectories[0].shape[0] - 1
        if settings.max_start_epoch + settings.expert_epochs > epochs:
            raise ValueError(
                f"max_start_epoch ({settings.max_start_epoch}) + expert_epochs ({settings.expert_epochs}) exceeds "
                f"the {epochs} epochs the experts were trained for"
            )
        if settings.segments < 1 or (settings.segment_threads is not None and settings.segment_threads < 1):
            raise ValueError(f"segments ({settings.segments}) and segment_threads ({settings.segment_threads}) must be "
                             ">= 1")
        if settings.steps not in STEP_RULES:
            raise ValueError(f"unknown MTT step rule {settings.steps!r}; use one of {', '.join(STEP_RULES)}")
        self.train, self.cpc, self.experts, self.s = train, cpc, experts, settings
        self.scale = InputScale.fit(train.features)  # the experts' own rule (experts.train_experts)
        unit = self.scale.to_unit(train.features)
        self.range = (float(unit.min()), float(unit.max()))  # spreads are 1 in unit space
        self.starts = [moving_starts(t, settings.expert_epochs, settings.max_start_epoch, settings.min_move)
                       for t in experts.trajectories]
        if not any(self.starts):
            raise ValueError("every expert trajectory has converged before max_start_epoch (no parameter movement "
                             "to match); train the experts with a higher lr or on more data")
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.model = build_model(model, train.num_classes, train.input_shape, **model_kwargs).to(self.device)
        self.spec = ParamSpec.from_module(self.model)
        if self.spec.total != experts.trajectories[0].shape[1]:
            raise ValueError("expert trajectories were made with another architecture than the MTT student")
        self.buffers = {k: v.to(self.device) for k, v in self.model.named_buffers()}
        self.meta = {"model": model, "model_kwargs": model_kwargs, "seed": seed, **asdict(settings)}
        start, labels = starting_clips(train, cpc, settings.init, self.generator, embed)  # embed: herding's space
        self.syn = self.scale.to_unit(start).clone().to(self.device).requires_grad_(True)
        self.labels = labels.clone().to(self.device)
        beyond = InputRange(*self.range, 1.0).overshoot(self.syn)  # spreads are 1 in unit space
        if beyond > settings.max_range:  # a DM start can lie far out (DM's CPC 1 sets: 12-18 spreads): say so now
            raise SyntheticRangeError(
                f"MTT's {settings.init!r} start lies {beyond:.1f} spreads beyond the real inputs' range, more than "
                f"max_range ({settings.max_range:g}) allows before the first iteration; start from 'herding' or "
                "'random' clips, or raise max_range")
        self._loss = _student_loss(self.model, self.spec, self.buffers)
        self._students: list[Callable] = [self._loss]  # one per segment thread (see ``students``)
        lr0 = self.starting_lr()
        self.meta.update(lr_init_used=lr0, start_epochs=self.starts, input_scale_identity=self.scale.identity)
        self.syn_lr = torch.tensor(lr0, device=self.device).requires_grad_(True)
        self.opt_img = torch.optim.SGD([self.syn], lr=settings.lr_img, momentum=settings.momentum_img)
        self.opt_lr = (torch.optim.SGD([self.syn_lr], lr=settings.lr_lr, momentum=0.5)
                       if settings.steps == "absolute" else None)
        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self.augment = AudioAugment() if settings.augment else None

    def starting_lr(self) -> float:
        """The student's first rate (``MTTSettings.lr_init``): given, the experts' own, or fitted (``fit_lr``)."""
        if self.s.lr_init is None:
            return self.fit_lr()
        if self.s.lr_init == "experts":
            if self.experts.lr is None:
                raise ValueError("lr_init='experts' needs the experts' learning rate, and this expert bank does not "
                                 "record one; give lr_init as a number, or None to fit it")
            return float(self.experts.lr)
        if isinstance(self.s.lr_init, str) or not self.s.lr_init > 0:
            raise ValueError(f"lr_init must be a positive rate, 'experts' or None, got {self.s.lr_init!r}")
        return float(self.s.lr_init)

    def fit_lr(self) -> float:
        """The student's starting lr: ``syn_steps`` steps along the initial clips' gradient best reach the expert.

        Per matched (trajectory, start) pair, the least-squares rate along ``G = syn_steps * grad`` at the start
        towards the target, ``D cos / |G|`` (``cos`` floored at 0.1), then the median over pairs (``lr_init=None``).
        The idea: the experts' move per epoch depends on the data's size, so no fixed rate suits every set.  As a
        continual-learning memory's start it measured worse than the experts' own rate: the fitted rate came out
        10-20x lower, and the clips pushed to cover the experts' move at it did not carry to new speakers
        (``strategies.distilled_storage``), so ``"experts"`` is the default and this stays an option.
        """
        rates = []
        x, y = self.syn.detach(), self.labels
        for traj, starts in zip(self.experts.trajectories, self.starts):
            for t in starts:
                start = traj[t].to(self.device)
                move = traj[t + self.s.expert_epochs].to(self.device) - start
                g = torch.func.grad(self._loss)(start, x, y) * self.s.syn_steps
                gn, d = float(g.norm()), float(move.norm())
                if gn > 0:
                    cos = float(torch.dot(-g, move)) / (gn * d)
                    rates.append(d * max(cos, 0.1) / gn)
        if not rates:
            raise ValueError("the synthetic clips give a zero gradient at every expert start: cannot fit lr_init")
        return float(torch.tensor(rates).median())

    # -- one iteration ---------------------------------------------------------------------------------------
    def draw_segment(self) -> tuple[int, torch.Tensor, torch.Tensor, list]:
        """One expert segment to match: (start epoch, start and target parameters, the unroll's batch plan)."""
        s, g = self.s, self.generator
        usable = [k for k, st in enumerate(self.starts) if st]
        k = usable[int(torch.randint(len(usable), (1,), generator=g))]
        traj = self.experts.trajectories[k]
        start = self.starts[k][int(torch.randint(len(self.starts[k]), (1,), generator=g))]
        _, _, coeffs, frames = self.syn.shape
        plan = plan_batches(self.syn.shape[0], s.syn_steps, s.batch_syn, g, self.augment, coeffs, frames, self.device)
        return start, traj[start].to(self.device), traj[start + s.expert_epochs].to(self.device), plan

    def segment_loss(self, start_p: torch.Tensor, target: torch.Tensor, plan: list,
                     student: Callable | None = None) -> torch.Tensor:
        final = self._unroll(student or self._loss, self.syn, self.labels, self.syn_lr, start_p, plan, self.augment)
        return match_loss(final, start_p, target)

    def students(self, n: int) -> queue.SimpleQueue:
        """``n`` student losses on separate copies of the network: ``functional_call`` swaps a module's parameters
        while it runs, so two threads must never run it on the same module at once."""
        while len(self._students) < n:
            model = copy.deepcopy(self.model)
            self._students.append(_student_loss(model, self.spec, dict(model.named_buffers())))
        free: queue.SimpleQueue = queue.SimpleQueue()
        for student in self._students[:n]:
            free.put(student)
        return free

    def segment_threads(self) -> int:
        """How many threads compute an iteration's segments (``MTTSettings.segment_threads``; None: see there)."""
        if self.s.segment_threads is not None:
            return self.s.segment_threads
        return 1 if self.device.type != "cpu" else max(1, min(self.s.segments, torch.get_num_threads()))

    def matched_segments(self) -> tuple[torch.Tensor, int]:
        """Mean matching loss of ``segments`` segments with its gradients put in ``syn.grad`` / ``syn_lr.grad``.

        With ``segment_threads > 1`` the segments' unrolls and backward passes run in concurrent threads (torch
        releases the GIL inside operators), each on one intra-op thread; the gradients are summed in segment order,
        so the result does not depend on the threads.
        """
        draws = [self.draw_segment() for _ in range(self.s.segments)]
        threads = min(self.segment_threads(), len(draws))
        free = self.students(threads)

        def one(draw) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
            _, start_p, target, plan = draw
            student = free.get()
            try:
                loss = self.segment_loss(start_p, target, plan, student) / len(draws)
                if not torch.isfinite(loss):
                    return loss.detach(), torch.zeros_like(self.syn), None
                g_syn, g_lr = torch.autograd.grad(loss, [self.syn, self.syn_lr], allow_unused=True)
                return loss.detach(), g_syn, g_lr
            finally:
                free.put(student)

        parts = concurrently(one, draws, threads)
        loss = torch.stack([p[0] for p in parts]).sum()
        self.syn.grad = torch.stack([p[1] for p in parts]).sum(0)
        lr_grads = [p[2] for p in parts if p[2] is not None]
        self.syn_lr.grad = torch.stack(lr_grads).sum(0) if lr_grads else None
        return loss, draws[0][0]

    def step(self) -> dict[str, float]:
        s = self.s
        loss, start = self.matched_segments()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"MTT loss became {loss.item()} at iteration {self.iteration + 1} (learned lr {self.syn_lr.item():.4g}); "
                "lower lr_img or lr_lr; the last good checkpoint is kept"
            )
        with torch.no_grad():
            if self.opt_lr is not None:  # absolute: plain SGD on the raw meta-gradients, as the MTT authors
                self.opt_img.step()
                self.opt_lr.step()
                self.syn_lr.clamp_(min=1e-6)
            else:
                # scale-free steps: the clips' gradient normalised to unit RMS (lr_img is then in spreads), the lr
                # multiplied by exp(+-lr_lr); both independent of the normalising distance and of the inputs' units
                scale_free_step(self.syn.grad)
                self.opt_img.step()
                if self.syn_lr.grad is not None:
                    self.syn_lr.mul_(torch.exp(-s.lr_lr * torch.sign(self.syn_lr.grad)))
        if not torch.isfinite(self.syn).all():
            raise NonFiniteLossError(f"synthetic features became non-finite at iteration {self.iteration + 1}")
        self.check_range()
        self.iteration += 1
        rec = {"iteration": self.iteration, "loss": loss.item(), "syn_lr": self.syn_lr.item(), "start_epoch": start}
        self.history.append(rec)
        return rec

    def check_range(self) -> None:
        """Raise :class:`SyntheticRangeError` when a clip left the real inputs' range by more than ``max_range``."""
        m, sd = float(self.scale.mean[0]), float(self.scale.std[0])
        lo, hi = self.range

        def in_channel_0(s_lo: float, s_hi: float) -> str:
            return (f" (in channel 0's units [{s_lo * sd + m:.4g}, {s_hi * sd + m:.4g}] against [{lo * sd + m:.4g}, "
                    f"{hi * sd + m:.4g}] +- {self.s.max_range * sd:.4g})")

        InputRange(lo, hi, 1.0).check(  # spreads are 1 in unit space
            self.syn, self.s.max_range, "MTT", self.iteration + 1,
            SCALE_FREE_HINT if self.s.steps == "absolute" else "", in_channel_0)

    # -- checkpointing ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"syn": self.syn.detach().cpu(), "labels": self.labels.cpu(), "syn_lr": self.syn_lr.detach().cpu(),
                "opt_img": self.opt_img.state_dict(), "iteration": self.iteration, "generator": self.generator.get_state(),
                "losses": torch.tensor([h["loss"] for h in self.history]),
                **({"opt_lr": self.opt_lr.state_dict()} if self.opt_lr is not None else {})}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.syn.copy_(state["syn"].to(self.device))
            self.syn_lr.copy_(state["syn_lr"].to(self.device))
        self.labels = state["labels"].to(self.device)
        self.opt_img.load_state_dict(state["opt_img"])
        if self.opt_lr is not None:
            self.opt_lr.load_state_dict(state["opt_lr"])
        self.iteration = int(state["iteration"])
        self.generator.set_state(state["generator"])
        self.history = [{"iteration": i + 1, "loss": float(v)} for i, v in enumerate(state["losses"].tolist())]

    def save_checkpoint(self, path: Path) -> None:
        state = self.state_dict()
        atomic_write(path, lambda tmp: torch.save(state, tmp))

    def load_checkpoint(self, path: Path) -> bool:
        """Resume from ``path``; False when it is absent, or unreadable or not this run's (then moved aside)."""

        def restore(p: Path) -> bool:
            state = torch.load(p, weights_only=True)
            for key, mine in (("syn", self.syn), ("labels", self.labels), ("syn_lr", self.syn_lr)):
                if tuple(state[key].shape) != tuple(mine.shape):
                    raise ValueError(f"'{key}' of shape {tuple(state[key].shape)}, this run has {tuple(mine.shape)}")
            before = self.state_dict()
            try:
                self.load_state_dict(state)
            except Exception:
                self.load_state_dict(before)  # leave the run as it was: it starts afresh
                raise
            return True

        return bool(load_or_move_aside(path, restore))

    def result(self, stats=None) -> SyntheticSet:
        clips = self.scale.from_unit(self.syn.detach().cpu().clone())  # back to the data's own units
        return SyntheticSet(clips, self.labels.cpu().clone(), self.train.classes, "mtt",
                            lr=float(self.syn_lr.item()), stats=stats,
                            meta={**self.meta, "iterations_done": self.iteration, "cpc": self.cpc,
                                  "losses": [round(h["loss"], 6) for h in self.history]})

    def run(self, checkpoint: Path | None = None, progress: bool = True,
            on_step: Callable[[dict[str, float]], None] | None = None) -> SyntheticSet:
        """Iterate to ``settings.iterations``, resuming from ``checkpoint`` if it exists and saving to it.

        The checkpoint is locked for the run (one writer; a second run on it waits, then resumes from where the
        first stopped), and a damaged one is moved aside with a warning and the run starts afresh.
        """
        if checkpoint is None:
            return self._run(None, progress, on_step)
        with locked(checkpoint, remove_on_release=True, on_wait=tqdm.write if progress else None):
            return self._run(checkpoint, progress, on_step)

    def _run(self, checkpoint: Path | None, progress: bool,
             on_step: Callable[[dict[str, float]], None] | None) -> SyntheticSet:
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        bar = tqdm(total=self.s.iterations, initial=self.iteration, desc="MTT", disable=not progress)
        t0 = time.time()
        while self.iteration < self.s.iterations:
            rec = self.step()
            rec["seconds"] = time.time() - t0
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['syn_lr']:.4g}")
            if on_step is not None:
                on_step(rec)
            if checkpoint is not None and (self.iteration % self.s.checkpoint_every == 0
                                           or self.iteration == self.s.iterations):
                self.save_checkpoint(checkpoint)
        bar.close()
        return self.result()


def distill_mtt(train: FeatureSet, cpc: int, experts: ExpertBank, settings: MTTSettings, model: str = "convnet",
                model_kwargs: dict | None = None, device: torch.device | str = "cpu", seed: int = 0,
                checkpoint: Path | None = None, progress: bool = True,
                on_step: Callable[[dict[str, float]], None] | None = None,
                embed: Embed | None = None) -> SyntheticSet:
    """Distil ``train`` into ``cpc`` clips per class with MTT against ``experts``' trajectories (``embed``: the
    space a herding start is chosen in)."""
    distiller = MTTDistiller(train, cpc, experts, settings, model, model_kwargs or {}, device, seed, embed)
    return distiller.run(checkpoint, progress, on_step)
