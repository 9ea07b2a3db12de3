"""Expert trajectories for MTT: networks trained on the real data, flat parameters saved after every epoch.

Experts are the main cost of MTT on a CPU, so they are stored on disk keyed by the data, the model and the
training settings, reused by every later distillation with the same key, and trained resumably: an
interrupted run continues from the last finished epoch of the expert it was on.
"""

from __future__ import annotations

import os
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

    def __len__(self) -> int:
        return len(self.trajectories)


def expert_folder(train: FeatureSet, settings: ExpertSettings, root: Path | None = None) -> Path:
    key = settings_digest(tensor_digest(train.features), tensor_digest(train.labels), settings)[:20]
    return (root or cache_dir() / "experts") / key


def _train_one(
    k: int, train: FeatureSet, test: FeatureSet | None, s: ExpertSettings, folder: Path, device: torch.device,
    progress: bool,
) -> tuple[torch.Tensor, float]:
    final = folder / f"expert_{k:03d}.safetensors"
    if final.exists():
        t = load_file(str(final))
        return t["trajectory"], float(t["test_accuracy"].item())
    partial = folder / f"expert_{k:03d}.partial.pt"
    gen = torch.Generator().manual_seed(s.seed * 1000 + k)
    torch.manual_seed(s.seed * 1000 + k)
    model = build_model(s.model, train.num_classes, train.input_shape, **s.model_kwargs).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    traj = [flatten_params(model).cpu()]
    if partial.exists():
        state = torch.load(partial, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        traj = list(state["trajectory"])
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
        tmp = partial.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                    "trajectory": torch.stack(traj)}, tmp)
        os.replace(tmp, partial)
    acc = accuracy(model, test) if test is not None else float("nan")
    trajectory = torch.stack(traj)
    tmp = folder / f".expert_{k:03d}.tmp"
    save_file({"trajectory": trajectory.contiguous(), "test_accuracy": torch.tensor([acc])}, str(tmp))
    os.replace(tmp, final)
    partial.unlink(missing_ok=True)
    return trajectory, acc


def train_experts(
    train: FeatureSet, settings: ExpertSettings, test: FeatureSet | None = None, device: torch.device | str = "cpu",
    root: Path | None = None, progress: bool = True,
) -> ExpertBank:
    """Train (or load) ``settings.num_experts`` trajectories; safe to interrupt and call again."""
    folder = expert_folder(train, settings, root)
    folder.mkdir(parents=True, exist_ok=True)
    device = torch.device(device)
    trajs, accs = [], []
    for k in tqdm(range(settings.num_experts), desc="experts", disable=not progress):
        t, a = _train_one(k, train, test, settings, folder, device, progress)
        trajs.append(t)
        accs.append(a)
    return ExpertBank(folder, trajs, accs)
