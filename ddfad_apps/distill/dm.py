"""Distribution Matching (Zhao & Bilen, WACV 2023): synthetic clips whose embeddings match the real ones.

Each iteration draws a freshly initialised network and, for every class, pulls the mean embedding of the
(augmented) synthetic clips towards that of a batch of (identically augmented) real clips.  No network is
trained and no second-order gradient is taken, which makes DM the cheapest distillation method per step.

This module also holds what DM and gradient matching (:mod:`ddfad_apps.distill.dc`) share: initialising the
synthetic set, class-balanced real batches, seeded fresh networks and siamese per-class augmentation.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn
from tqdm.auto import tqdm

from ddfad_apps.distill.augment import AudioAugment, AugmentParams
from ddfad_apps.distill.coreset import Embed, check_init, initial_clips
from ddfad_apps.distill.range_guard import SCALE_FREE_HINT, STEP_RULES, InputRange, scale_free_step
from ddfad_apps.distill.synthetic_set import SyntheticSet, check_clips_per_class
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.models import build_model
from ddfad_apps.models.copies import NetworkFactory
from ddfad_apps.training.loops import NonFiniteLossError

StepCallback = Callable[[dict[str, float]], None]
"""Called after every iteration with ``{"iteration": 1-based, "loss": ..., "seconds": since start}`` (as MTT)."""


@dataclass
class DMSettings:
    """DM hyper-parameters; the defaults are the paper's (see :meth:`paper`), :meth:`fast` is for a small CPU.

    ``model_kwargs`` go to :func:`ddfad_apps.models.build_model`; empty means the ConvNet defaults (depth 3,
    width 128, instance norm, ReLU, average pooling), the ConvNet-3 of the paper.  ``augment`` applies
    :class:`AudioAugment` siamese-style (one draw per class, shared by its real and synthetic batch), the
    audio counterpart of DM's DSA augmentation.  ``init`` is 'real' (random real clips), 'herding' (the herding clips) or 'noise'.

    ``steps`` (:data:`~ddfad_apps.distill.range_guard.STEP_RULES`): ``absolute`` is the paper's SGD on the raw
    gradients, whose size depends on the network: the fast ``lr_img`` 10, set on ConvNet, made VGG11's clips
    diverge (loss 2.1 -> 15.5 in 100 iterations, clips at 4x the data's spread) and barely moved ResNet18's
    (``scripts/bench_memory_experience.py --model``); ``scale_free`` normalises the gradient so that ``lr_img`` is
    the step in the inputs' spreads.  Clips beyond the real range by ``max_range`` spreads stop the run: 50, not
    MTT's 10, since DM's good sets lie far out too (Table I's ConvNet CPC 1 sets, absolute steps: 12-18 spreads
    beyond the range at 4.5x its spread, 72.7 % on FSDD against 40.4 % for herding); so does VGG11's failed memory
    (18.6 beyond), which the range cannot tell from them: the guard stops blow-ups (+-100,000 for inputs in
    [0, 1]), and the memory's default, the scale-free rule, is what avoids VGG11's failure.
    """

    # added after sets were cached: at their defaults they leave cache keys as they were (fingerprint.settings_digest)
    DIGEST_NEUTRAL: ClassVar[tuple[str, ...]] = ("steps", "max_range")

    iterations: int = 20000
    lr_img: float = 1.0
    batch_real: int = 256
    model: str = "convnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    augment: bool = True
    momentum: float = 0.5
    init: str = "real"
    steps: str = "absolute"
    max_range: float = 50.0

    def __post_init__(self) -> None:  # a bad start is refused when the settings are made, not after hours of work
        check_init(self.init, SYNTHETIC_INITS)

    @classmethod
    def paper(cls) -> "DMSettings":
        """The paper's CIFAR settings: 20k iterations, lr_img 1, 256 real clips per class, ConvNet-3 width 128.

        Meant for a GPU; not measured here.
        """
        return cls()

    @classmethod
    def fast(cls) -> "DMSettings":
        """About 3 minutes on a 2-core CPU for FSDD at cpc 10: 300 iterations, 64 real clips per class, width 32.

        ``lr_img`` is 10, not the paper's 1: with 70x fewer iterations the clips must move faster (on FSDD cpc 10,
        100 iterations at lr 1 left a ConvNet at 82% test accuracy, at lr 10 at 90%; random real clips: 83%).
        """
        return cls(iterations=300, lr_img=10.0, batch_real=64, model_kwargs={"width": 32})


# DM's clip steps in the inputs' spread (steps 'scale_free'): 0.01 a step moved a 2-class FSDD experience's ConvNet
# memory 0.28 spreads in 300 iterations, near the 0.18 of the fast absolute lr_img 10 (bench_memory_experience.py)
SCALE_FREE_DM_STEPS: dict[str, object] = {"steps": "scale_free", "lr_img": 0.01}


# where DM's and DC's synthetic clips start: real clips ('real' = 'random', or 'herding') or N(0, 1) noise
SYNTHETIC_INITS: tuple[str, ...] = ("real", "random", "herding", "noise")


def init_synthetic(train: FeatureSet, cpc: int, init: str, generator: torch.Generator | None,
                   device: torch.device, embed: Embed | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Learnable ``(C * cpc, ...)`` features grouped by class (real clips or N(0, 1) noise) and their labels
    (``embed``: the space a herding start is chosen in, :func:`~ddfad_apps.distill.coreset.initial_clips`)."""
    if init == "noise":
        labels = torch.arange(train.num_classes).repeat_interleave(cpc)
        x = torch.randn((len(labels), *train.input_shape), generator=generator)
    else:
        idx = initial_clips(train, cpc, init, generator, embed)
        x, labels = train.features[idx].clone(), train.labels[idx].clone()
    return x.to(device).requires_grad_(True), labels.to(device)


class ClassBatches:
    """The real training features on ``device``, split by class, for drawing class-balanced real batches."""

    def __init__(self, train: FeatureSet, batch_real: int, device: torch.device) -> None:
        self.features = train.features.to(device)
        self.index = [train.class_indices(c) for c in range(train.num_classes)]
        self.per_class = min(batch_real, min(len(i) for i in self.index))

    def sample(self, generator: torch.Generator | None) -> torch.Tensor:
        """``(C * per_class, ...)`` real clips, class 0's first, each class drawn without replacement."""
        idx = torch.cat([i[torch.randperm(len(i), generator=generator)[: self.per_class]] for i in self.index])
        return self.features[idx.to(self.features.device)]


def fresh_network(name: str, num_classes: int, input_shape: tuple[int, int, int], model_kwargs: dict[str, Any],
                  generator: torch.Generator | None, device: torch.device) -> nn.Module:
    """A newly initialised network, its weights drawn from ``generator`` (the global RNG is left untouched)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_model(name, num_classes, input_shape, **model_kwargs)
    return net.to(device).train()


def has_batchnorm(net: nn.Module) -> bool:
    """Batch statistics would mix classes in a forward over all classes at once."""
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())


def siamese_params(augment: AudioAugment, num_classes: int, counts: tuple[int, ...], shape: torch.Size,
                   generator: torch.Generator | None, device: torch.device) -> list[AugmentParams]:
    """One augmentation per class, repeated over that class's rows, for each of several class-grouped batches.

    ``counts[k]`` is the rows per class of batch ``k`` (e.g. real and synthetic): row ``j`` of batch ``k``
    gets the draw of class ``j // counts[k]``, so a class's real and synthetic clips see the same transform
    (DSA's siamese augmentation).
    """
    p = augment.sample(num_classes, shape[-2], shape[-1], device, generator)
    fields = (p.shift, p.t_start, p.t_width, p.f_start, p.f_width)
    return [AugmentParams(*(f.repeat_interleave(n) for f in fields)) for n in counts]


def class_mean_embeddings(net: nn.Module, x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(C, D)`` mean of ``net.embed`` over each class's rows of the class-grouped batch ``x``."""
    if has_batchnorm(net):
        emb = torch.cat([net.embed(part) for part in x.chunk(num_classes)])
    else:
        emb = net.embed(x)
    return emb.reshape(num_classes, -1, emb.shape[-1]).mean(1)


def distill_dm(
    train: FeatureSet, cpc: int, settings: DMSettings | None = None, device: torch.device | str = "cpu",
    generator: torch.Generator | None = None, progress: bool = True, on_step: StepCallback | None = None,
    embed: Embed | None = None, network: NetworkFactory | None = None,
) -> SyntheticSet:
    """``cpc`` synthetic clips per class by distribution matching (``on_step``: see :data:`StepCallback`;
    ``embed``: the space a herding start is chosen in; ``network``: where the fresh networks come from, e.g.
    :class:`~ddfad_apps.models.copies.FreshCopies` of a user's own model, instead of ``settings.model``).

    The loss of an iteration is ``sum_c ||mean embed(aug(real_c)) - mean embed(aug(syn_c))||^2`` under a
    fresh random network whose weights get no gradient; the synthetic features are updated by SGD with
    momentum 0.5 as in the paper.  All classes go through the network in one forward (real, no grad) and one
    (synthetic), except for BatchNorm models, which see one class at a time as in the paper's code.
    Raises :class:`NonFiniteLossError` when the loss is NaN/inf, and its subclass
    :class:`~ddfad_apps.distill.range_guard.SyntheticRangeError` when the clips leave the real inputs' range by more
    than ``settings.max_range`` spreads.  ``settings.steps="scale_free"`` normalises each gradient first (see
    :class:`DMSettings`).
    """
    settings = settings or DMSettings()
    if settings.steps not in STEP_RULES:
        raise ValueError(f"unknown DM step rule {settings.steps!r}; use one of {', '.join(STEP_RULES)}")
    check_clips_per_class(train, cpc)
    if settings.augment and len(train.input_shape) != 3:
        raise ValueError(f"DM's augmentation shifts and masks (C, H, W) inputs, and these are {train.input_shape}; "
                         "distil with augment=False")
    limits = InputRange.of(train.features)
    device = torch.device(device)
    start = time.perf_counter()
    C = train.num_classes
    syn, labels = init_synthetic(train, cpc, settings.init, generator, device, embed)
    real = ClassBatches(train, settings.batch_real, device)
    augment = AudioAugment() if settings.augment else None
    opt = torch.optim.SGD([syn], lr=settings.lr_img, momentum=settings.momentum)
    losses: list[float] = []
    bar = tqdm(range(settings.iterations), desc="DM", disable=not progress, leave=False)
    for it in bar:
        net = (network(generator, device) if network is not None
               else fresh_network(settings.model, C, train.input_shape, settings.model_kwargs, generator, device))
        for p in net.parameters():
            p.requires_grad_(False)
        xr, xs = real.sample(generator), syn
        if augment is not None:
            pr, ps = siamese_params(augment, C, (real.per_class, cpc), syn.shape, generator, device)
            xr, xs = augment.apply(xr, pr), augment.apply(xs, ps)
        with torch.no_grad():
            mean_real = class_mean_embeddings(net, xr, C)
        loss = ((mean_real - class_mean_embeddings(net, xs, C)) ** 2).sum()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"DM: matching loss became {loss.item()} at iteration {it + 1}; lower lr_img (now {settings.lr_img})"
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if settings.steps == "scale_free":
            scale_free_step(syn.grad, limits.spread)
        opt.step()
        limits.check(syn, settings.max_range, "DM", it + 1, SCALE_FREE_HINT if settings.steps == "absolute" else "")
        losses.append(loss.item())
        bar.set_postfix(loss=round(losses[-1], 4))
        if on_step is not None:
            on_step({"iteration": it + 1, "loss": losses[-1], "seconds": time.perf_counter() - start})
    meta = {"clips_per_class": cpc, "settings": asdict(settings), "dataset": train.meta.get("dataset"),
            "seconds": round(time.perf_counter() - start, 2), "first_loss": losses[0] if losses else None,
            "last_loss": losses[-1] if losses else None,
            "network": getattr(network, "name", None) or settings.model}
    return SyntheticSet(syn.detach().cpu(), labels.cpu(), list(train.classes), "dm", None, None, meta)
