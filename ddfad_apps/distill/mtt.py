"""Matching Training Trajectories (Cazenavette et al., CVPR 2022), the distillation method of DDFAD.

Synthetic clips and a learnable student learning rate are optimised so that ``syn_steps`` SGD steps on the
synthetic set, started from an expert's epoch-``t`` parameters, land near the same expert's epoch ``t + M``
parameters; the distance is normalised by how far the expert itself moved.  The student is a flat parameter
vector run through ``torch.func.functional_call``.  The unroll (``distill/unroll.py``) is differentiated either
exactly at the memory of one step (``unroll="lean"``, the default: the parameters of every step are kept and each
step is recomputed in the backward pass) or by plain autograd through all steps (``unroll="full"``, whose memory
grows with ``syn_steps x batch_syn``); both give the same loss and gradients.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ddfad_apps.distill.augment import AudioAugment
from ddfad_apps.distill.coreset import initial_clips
from ddfad_apps.distill.experts import ExpertBank
from ddfad_apps.distill.synthetic_set import SyntheticSet, check_clips_per_class
from ddfad_apps.distill.unroll import match_loss, plan_batches, unroll
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.models import ParamSpec, build_model
from ddfad_apps.storage import atomic_write, load_or_move_aside, locked
from ddfad_apps.training.loops import NonFiniteLossError


@dataclass
class MTTSettings:
    """The knobs of MTT, named as in the MTT code (``syn_steps`` = N, ``expert_epochs`` = M)."""

    syn_steps: int = 20
    expert_epochs: int = 2
    max_start_epoch: int = 6
    lr_img: float = 1000.0
    lr_lr: float = 1e-5
    lr_init: float = 0.01
    batch_syn: int | None = None
    iterations: int = 200
    augment: bool = True
    momentum_img: float = 0.5
    checkpoint_every: int = 25
    init: str = "random"  # real clips to start from: 'random' (MTT) or 'herding' (closest to the class mean)
    # 'lean': exact meta-gradients holding one step's graph at a time (distill/unroll.py); 'full': autograd through
    # the whole unroll, every step's graph kept (the MTT authors' way; memory grows with syn_steps x batch_syn).
    unroll: str = "lean"


def _student_loss(model, spec: ParamSpec, buffers: dict) -> Callable:
    def loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, (spec.unflatten(flat), buffers), (x,))
        return F.cross_entropy(out, y)

    return loss


class MTTDistiller:
    """One MTT run: holds the synthetic set and its optimisers so it can be checkpointed and resumed."""

    def __init__(self, train: FeatureSet, cpc: int, experts: ExpertBank, settings: MTTSettings, model: str,
                 model_kwargs: dict, device: torch.device | str = "cpu", seed: int = 0) -> None:
        check_clips_per_class(train, cpc)
        self._unroll = unroll(settings.unroll)
        if not len(experts):
            raise ValueError("MTT needs at least one expert trajectory")
        epochs = experts.trajectories[0].shape[0] - 1
        if settings.max_start_epoch + settings.expert_epochs > epochs:
            raise ValueError(
                f"max_start_epoch ({settings.max_start_epoch}) + expert_epochs ({settings.expert_epochs}) exceeds "
                f"the {epochs} epochs the experts were trained for"
            )
        self.train, self.cpc, self.experts, self.s = train, cpc, experts, settings
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.model = build_model(model, train.num_classes, train.input_shape, **model_kwargs).to(self.device)
        self.spec = ParamSpec.from_module(self.model)
        if self.spec.total != experts.trajectories[0].shape[1]:
            raise ValueError("expert trajectories were made with another architecture than the MTT student")
        self.buffers = {k: v.to(self.device) for k, v in self.model.named_buffers()}
        self.meta = {"model": model, "model_kwargs": model_kwargs, "seed": seed, **asdict(settings)}
        init = initial_clips(train, cpc, settings.init, self.generator)
        self.syn = train.features[init].clone().to(self.device).requires_grad_(True)
        self.labels = train.labels[init].clone().to(self.device)
        self.syn_lr = torch.tensor(settings.lr_init, device=self.device).requires_grad_(True)
        self.opt_img = torch.optim.SGD([self.syn], lr=settings.lr_img, momentum=settings.momentum_img)
        self.opt_lr = torch.optim.SGD([self.syn_lr], lr=settings.lr_lr, momentum=0.5)
        self.iteration = 0
        self.history: list[dict[str, float]] = []
        self.augment = AudioAugment() if settings.augment else None
        self._loss = _student_loss(self.model, self.spec, self.buffers)

    # -- one iteration ---------------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        s, g = self.s, self.generator
        traj = self.experts.trajectories[int(torch.randint(len(self.experts), (1,), generator=g))]
        start = int(torch.randint(s.max_start_epoch + 1, (1,), generator=g))
        start_p = traj[start].to(self.device)
        target = traj[start + s.expert_epochs].to(self.device)
        _, _, coeffs, frames = self.syn.shape
        plan = plan_batches(self.syn.shape[0], s.syn_steps, s.batch_syn, g, self.augment, coeffs, frames, self.device)
        final = self._unroll(self._loss, self.syn, self.labels, self.syn_lr, start_p, plan, self.augment)
        loss = match_loss(final, start_p, target)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"MTT loss became {loss.item()} at iteration {self.iteration + 1} (learned lr {self.syn_lr.item():.4g}); "
                "lower lr_img or lr_lr; the last good checkpoint is kept"
            )
        self.opt_img.zero_grad(set_to_none=True)
        self.opt_lr.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_img.step()
        self.opt_lr.step()
        with torch.no_grad():
            self.syn_lr.clamp_(min=1e-6)
        if not torch.isfinite(self.syn).all():
            raise NonFiniteLossError(f"synthetic features became non-finite at iteration {self.iteration + 1}")
        self.iteration += 1
        rec = {"iteration": self.iteration, "loss": loss.item(), "syn_lr": self.syn_lr.item(), "start_epoch": start}
        self.history.append(rec)
        return rec

    # -- checkpointing ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"syn": self.syn.detach().cpu(), "labels": self.labels.cpu(), "syn_lr": self.syn_lr.detach().cpu(),
                "opt_img": self.opt_img.state_dict(), "opt_lr": self.opt_lr.state_dict(),
                "iteration": self.iteration, "generator": self.generator.get_state(),
                "losses": torch.tensor([h["loss"] for h in self.history])}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            self.syn.copy_(state["syn"].to(self.device))
            self.syn_lr.copy_(state["syn_lr"].to(self.device))
        self.labels = state["labels"].to(self.device)
        self.opt_img.load_state_dict(state["opt_img"])
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
        return SyntheticSet(self.syn.detach().cpu().clone(), self.labels.cpu().clone(), self.train.classes, "mtt",
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
                on_step: Callable[[dict[str, float]], None] | None = None) -> SyntheticSet:
    """Distil ``train`` into ``cpc`` clips per class with MTT against ``experts``' trajectories."""
    distiller = MTTDistiller(train, cpc, experts, settings, model, model_kwargs or {}, device, seed)
    return distiller.run(checkpoint, progress, on_step)
