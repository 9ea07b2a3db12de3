"""Expert trajectories for MTT: networks trained on the real data, flat parameters saved after every epoch.

Experts are the main cost of MTT on a CPU, so they are stored on disk keyed by the data, the model and the
training settings, reused by every later distillation with the same key, and trained resumably: an
interrupted run continues from the last finished epoch of the expert it was on.  Each expert is trained by
one process only (a file lock per expert), and an unreadable expert file is moved aside and trained again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ddfad_apps.data.locate import cache_dir
from ddfad_apps.distill.augment import AudioAugment
from ddfad_apps.distill.fingerprint import settings_digest, tensor_digest
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.models import build_model, flatten_params
from ddfad_apps.storage import (
    FileLock,
    atomic_write,
    load_or_move_aside,
    lock_path,
    locked,
)
from ddfad_apps.training.loops import NonFiniteLossError, accuracy


@dataclass
class ExpertSettings:
    """How experts are trained.  Plain SGD (no momentum) as in MTT, so student steps imitate expert steps."""

    model: str = "convnet"
    model_kwargs: dict = field(default_factory=lambda: {"width": 64})
    num_experts: int = 5
    epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.0
    batch_size: int = 64
    weight_decay: float = 0.0
    augment: bool = True
    seed: int = 0


@dataclass
class ExpertBank:
    """The trajectories (each ``(epochs + 1, P)``) and where they are stored."""

    folder: Path
    trajectories: list[torch.Tensor]
    test_accuracy: list[float]
    lr: float | None = None  # the rate the experts trained at (ExpertSettings.lr); None: not known

    def __len__(self) -> int:
        return len(self.trajectories)


@dataclass(frozen=True)
class InputScale:
    """Per-channel mean and spread of real inputs: MTT trains experts and the student on standardised inputs.

    Why: MTT's step sizes (image updates, learned lr, expert lr) were tuned for unit-variance inputs, so inputs in
    [0, 1] or scaled by 1000 exploded or stalled.  Standardising makes every run scale-free and mapping back
    returns the synthetic set in the data's own units.  Inputs already standardised (|mean| and |log spread|
    within ``tol``, e.g. normalised FD-MFCC) are left exactly as they are (:attr:`identity`), so their cached
    experts stay valid.  A constant channel gets spread 1.
    """

    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    identity: bool

    @classmethod
    def fit(cls, x: torch.Tensor, tol: float = 1e-3) -> "InputScale":
        if x.dim() < 2:
            raise ValueError(f"inputs must be (N, C, ...), got shape {tuple(x.shape)}")
        dims = [0, *range(2, x.dim())]
        mean, std = x.double().mean(dim=dims), x.double().std(dim=dims)
        std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
        identity = bool((mean.abs() <= tol).all() and (std.log().abs() <= tol).all())
        return cls(mean.float(), std.float(), identity)

    def _shape(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.to(x.device, x.dtype).view(1, -1, *([1] * (x.dim() - 2)))

    def to_unit(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.identity else (x - self._shape(self.mean, x)) / self._shape(self.std, x)

    def from_unit(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.identity else z * self._shape(self.std, z) + self._shape(self.mean, z)

    def features(self, data: FeatureSet) -> FeatureSet:
        """``data`` with standardised inputs (the same object when already standardised)."""
        if self.identity:
            return data
        return FeatureSet(self.to_unit(data.features), data.labels, data.classes, dict(data.meta))


def window_moves(trajectory: torch.Tensor, expert_epochs: int) -> torch.Tensor:
    """``||theta_{t+M} - theta_t||`` for every start epoch ``t`` of one trajectory: how far the expert still moves."""
    return (trajectory[expert_epochs:] - trajectory[:-expert_epochs]).norm(dim=1)


def moving_starts(trajectory: torch.Tensor, expert_epochs: int, max_start_epoch: int,
                  min_move: float) -> list[int]:
    """Start epochs ``<= max_start_epoch`` whose ``M``-epoch move is at least ``min_move`` x the trajectory's largest.

    Why: a trajectory that has converged barely moves, so MTT's loss (normalised by that move) divides by almost
    zero, its gradients blow up and the clips learn nothing but noise.  Moves under 1e-4 of the parameters' norm
    are converged whatever the ratio.
    """
    moves = window_moves(trajectory, expert_epochs)[: max_start_epoch + 1]
    norms = trajectory[: len(moves)].norm(dim=1)
    keep = (moves >= min_move * moves.max()) & (moves > 1e-4 * norms)
    return [int(t) for t in torch.nonzero(keep).flatten()]


def expert_cache_dir() -> Path:
    """Where expert trajectories are cached: ``<cache>/experts``, one folder per data and settings key."""
    return cache_dir() / "experts"


def expert_folder(train: FeatureSet, settings: ExpertSettings, root: Path | None = None) -> Path:
    key = settings_digest(tensor_digest(train.features), tensor_digest(train.labels), settings)[:20]
    return (root or expert_cache_dir()) / key


def expert_file(folder: Path, k: int) -> Path:
    return folder / f"expert_{k:03d}.safetensors"


def _load_expert(path: Path, s: ExpertSettings) -> tuple[torch.Tensor, float] | None:
    """A finished expert, or None when absent or unreadable (then moved aside with a warning, and retrained)."""

    def read(p: Path) -> tuple[torch.Tensor, float]:
        t = load_file(str(p))
        traj = t["trajectory"]
        if traj.ndim != 2 or traj.shape[0] != s.epochs + 1:
            raise ValueError(f"trajectory of shape {tuple(traj.shape)}, expected ({s.epochs + 1}, parameters)")
        return traj, float(t["test_accuracy"].item())

    return load_or_move_aside(path, read)


def _fresh_expert(k: int, train: FeatureSet, s: ExpertSettings, device: torch.device):
    gen = torch.Generator().manual_seed(s.seed * 1000 + k)
    torch.manual_seed(s.seed * 1000 + k)
    model = build_model(s.model, train.num_classes, train.input_shape, **s.model_kwargs).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    return model, opt, gen, [flatten_params(model).cpu()]


def _train_one(
    k: int, train: FeatureSet, test: FeatureSet | None, s: ExpertSettings, folder: Path, device: torch.device,
    progress: bool,
) -> tuple[torch.Tensor, float]:
    """Load expert ``k``, or train it (resuming its partial file); the caller holds expert ``k``'s lock."""
    final = expert_file(folder, k)
    done = _load_expert(final, s)
    if done is not None:
        return done
    partial = folder / f"expert_{k:03d}.partial.pt"
    had_partial = partial.exists()
    model, opt, gen, traj = _fresh_expert(k, train, s, device)

    def resume(p: Path) -> list[torch.Tensor]:
        state = torch.load(p, weights_only=True)
        if not 1 <= len(state["trajectory"]) <= s.epochs + 1:
            raise ValueError(f"{len(state['trajectory'])} saved epochs, expected 1 to {s.epochs + 1}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        return list(state["trajectory"])

    resumed = load_or_move_aside(partial, resume)
    if resumed is not None:
        traj = resumed
    elif had_partial:  # moved aside: the failed resume may have half-loaded the model, so start it afresh
        model, opt, gen, traj = _fresh_expert(k, train, s, device)
    aug = AudioAugment() if s.augment else None
    x_all, y_all = train.features.to(device), train.labels.to(device)
    n = len(train)
    for epoch in tqdm(range(len(traj) - 1, s.epochs), desc=f"expert {k + 1}/{s.num_experts}",
                      disable=not progress, leave=False):
        model.train()
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, s.batch_size):
            idx = order[start : start + s.batch_size]
            x = x_all[idx]
            if aug is not None:
                x = aug(x, generator=gen)
            loss = F.cross_entropy(model(x), y_all[idx])
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"expert {k}: loss {loss.item()} in epoch {epoch + 1}; lower the expert lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        traj.append(flatten_params(model).cpu())
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                 "trajectory": torch.stack(traj)}
        atomic_write(partial, functools.partial(torch.save, state))
    acc = accuracy(model, test) if test is not None else float("nan")
    trajectory = torch.stack(traj)
    atomic_write(final, lambda tmp: save_file(
        {"trajectory": trajectory.contiguous(), "test_accuracy": torch.tensor([acc])}, str(tmp)))
    partial.unlink(missing_ok=True)
    return trajectory, acc


def train_experts(
    train: FeatureSet, settings: ExpertSettings, test: FeatureSet | None = None, device: torch.device | str = "cpu",
    root: Path | None = None, progress: bool = True,
) -> ExpertBank:
    """Train (or load) ``settings.num_experts`` trajectories; safe to interrupt and call again.

    Inputs are standardised per channel first (:class:`InputScale`; a no-op on standardised features).
    Safe to run in several processes at once: each expert has its own lock, so every expert is trained by one
    process only.  Experts another process is training are skipped at first (this one trains the free ones),
    then waited for and loaded.  The folder itself is held with a shared lock, so ``ddfad-apps cache clear``
    leaves it alone while in use.
    """
    folder = expert_folder(train, settings, root)  # keyed by the caller's data (the scaling follows from it)
    scale = InputScale.fit(train.features)  # experts learn on standardised inputs, as the MTT student does
    train = scale.features(train)
    test = scale.features(test) if test is not None else None
    device = torch.device(device)
    found: dict[int, tuple[torch.Tensor, float]] = {}
    say = tqdm.write if progress else None
    with locked(folder, shared=True):
        folder.mkdir(parents=True, exist_ok=True)
        busy = []
        bar = tqdm(total=settings.num_experts, desc="experts", disable=not progress)
        for k in range(settings.num_experts):
            lock = FileLock(lock_path(expert_file(folder, k)))
            if not lock.acquire(blocking=False):  # another process is training it: come back later
                busy.append(k)
                continue
            with lock:
                found[k] = _train_one(k, train, test, settings, folder, device, progress)
            bar.update(1)
        for k in busy:
            with locked(expert_file(folder, k), on_wait=say):
                found[k] = _train_one(k, train, test, settings, folder, device, progress)
            bar.update(1)
        bar.close()
    return ExpertBank(folder, [found[k][0] for k in range(settings.num_experts)],
                      [found[k][1] for k in range(settings.num_experts)], settings.lr)
