"""Training and evaluating a network on in-memory feature tensors.

Used for whole-data baselines, for evaluating distilled sets (few clips, many epochs) and for NAS trials, so it
takes plain tensors and does index-slice mini-batches: no DataLoader, no per-sample Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ddfad_apps.features.dataset import FeatureSet


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


@dataclass
class TrainConfig:
    """Optimiser settings.  Defaults: SGD + momentum with cosine decay, which trains FD-MFCC ConvNets in ~15 epochs."""

    epochs: int = 15
    lr: float = 0.01
    batch_size: int = 64
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # 'cosine' | 'step' (halve at half the epochs, as DC/MTT evaluation) | 'none'


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    test_accuracy: float | None = None

    @property
    def final_train_loss(self) -> float:
        return self.history[-1]["train_loss"] if self.history else math.nan


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; use 'sgd' or 'adam'")


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps: int):
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=max(1, steps // 2), gamma=0.1)
    if cfg.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {cfg.schedule!r}")


@torch.no_grad()
def predict(model: nn.Module, features: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class of every row, in eval mode, on the model's device."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    preds = [model(features[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(features), batch_size)]
    model.train(was_training)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long)


def accuracy(model: nn.Module, data: FeatureSet, batch_size: int = 512) -> float:
    return (predict(model, data.features, batch_size) == data.labels.cpu()).float().mean().item()


def train_model(
    model: nn.Module, train: FeatureSet, cfg: TrainConfig, test: FeatureSet | None = None,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None, device: torch.device | str = "cpu",
    generator: torch.Generator | None = None, progress: bool = True, desc: str = "train",
    on_epoch: Callable[[int, dict[str, float]], None] | None = None, eval_every: int = 1,
) -> TrainResult:
    """Train ``model`` for ``cfg.epochs`` epochs; evaluate on ``test`` every ``eval_every`` epochs and at the end.

    Raises :class:`NonFiniteLossError` as soon as the loss is NaN/inf, naming the epoch, instead of training on.
    """
    device = torch.device(device)
    model.to(device)
    x_all, y_all = train.features.to(device), train.labels.to(device)
    n = len(train)
    bs = min(cfg.batch_size, n)
    steps_per_epoch = math.ceil(n / bs)
    opt = make_optimizer(model.parameters(), cfg)
    sched = make_scheduler(opt, cfg, cfg.epochs * steps_per_epoch)
    result = TrainResult()
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        order = torch.randperm(n, generator=generator).to(device)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            x, y = x_all[idx], y_all[idx]
            if augment is not None:
                x = augment(x)
            out = model(x)
            loss = F.cross_entropy(out, y)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(f"{desc}: loss became {loss.item()} in epoch {epoch + 1}; lower the lr")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            loss_sum += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
            total += len(idx)
        metrics = {"train_loss": loss_sum / total, "train_accuracy": correct / total}
        if test is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == cfg.epochs):
            metrics["test_accuracy"] = accuracy(model, test)
        result.history.append(metrics)
        bar.set_postfix({k: round(v, 4) for k, v in metrics.items()})
        if on_epoch is not None:
            on_epoch(epoch, metrics)
    if test is not None:
        result.test_accuracy = result.history[-1]["test_accuracy"]
    return result
