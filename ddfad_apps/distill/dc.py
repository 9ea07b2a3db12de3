"""Gradient matching: DC (Zhao, Mopuri & Bilen, ICLR 2021) and DSA (Zhao & Bilen, ICML 2021).

Synthetic clips are learned so that, class by class, the gradient they induce in a network equals the
gradient of a real batch, along the network's own training on the synthetic set (outer loop: match and update
the clips; inner loop: train the network on the current clips).  DSA adds differentiable augmentation,
applied siamese-style: a class's real and synthetic batch see the same :class:`AudioAugment` draw, so the
clips learn what survives augmentation instead of matching augmentation noise.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ddfad_apps.distill.augment import AudioAugment
from ddfad_apps.distill.coreset import Embed, check_init
from ddfad_apps.distill.dm import (
    ClassBatches,
    StepCallback,
    fresh_network,
    SYNTHETIC_INITS,
    init_synthetic,
    siamese_params,
)
from ddfad_apps.distill.synthetic_set import SyntheticSet, check_clips_per_class
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.training.loops import NonFiniteLossError


def paper_loops(cpc: int) -> tuple[int, int]:
    """(outer, inner) loops of the DC/DSA code for ``cpc``: (1, 1) at 1, (10, 50) up to 10, (50, 10) above."""
    if cpc == 1:
        return 1, 1
    if cpc <= 10:
        return 10, 50
    return 50, 10


@dataclass
class DCSettings:
    """DC/DSA hyper-parameters; the defaults are the papers' (see :meth:`paper`), :meth:`fast` is for a small CPU.

    ``outer_loops``/``inner_loops`` of None take the papers' values for the clips per class
    (:func:`paper_loops`).  ``inner_loops`` counts epochs of network training on the synthetic set (batches of
    ``batch_train``, plain SGD at ``lr_net``, augmented when ``dsa``).  ``model_kwargs`` go to ``build_model``;
    empty means the ConvNet defaults (depth 3, width 128, instance norm), the papers' ConvNet-3.
    """

    iterations: int = 1000
    outer_loops: int | None = None
    inner_loops: int | None = None
    lr_img: float = 0.1
    lr_net: float = 0.01
    batch_real: int = 256
    batch_train: int = 256
    model: str = "convnet"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    dsa: bool = False
    momentum: float = 0.5
    init: str = "real"

    def __post_init__(self) -> None:
        check_init(self.init, SYNTHETIC_INITS)

    @classmethod
    def paper(cls, dsa: bool = False) -> "DCSettings":
        """The papers' settings: 1000 iterations, lr_img 0.1, lr_net 0.01, 256 real clips per class, ConvNet-3.

        Meant for a GPU; not measured here.
        """
        return cls(dsa=dsa)

    @classmethod
    def fast(cls, dsa: bool = False) -> "DCSettings":
        """About 3 minutes on a 2-core CPU for FSDD at cpc 10: 30 iterations of 4 outer x 5 inner loops, width 32.

        ``lr_img`` is 1, not 0.1: 120 clip updates instead of 10,000 (on FSDD cpc 10, lr 1 and 0.3 gave 87% and
        86% against 83% for the random real clips they start from; lr 10 fell to 81%).
        """
        return cls(iterations=30, outer_loops=4, inner_loops=5, lr_img=1.0, batch_real=64,
                   model_kwargs={"width": 32}, dsa=dsa)

    def loops(self, cpc: int) -> tuple[int, int]:
        outer, inner = paper_loops(cpc)
        return (self.outer_loops or outer, inner if self.inner_loops is None else self.inner_loops)


def gradient_distance(g_syn: list[torch.Tensor], g_real: list[torch.Tensor]) -> torch.Tensor:
    """The DC paper's layer-wise distance: sum over output channels of ``1 - cos`` between the two gradients.

    Convolution kernels are compared per output channel (flattened over input channel and kernel), linear
    weights per output row; 1-D parameters (biases, norm scales) count zero, as in the DC code.
    """
    total = g_syn[0].new_zeros(())
    for gs, gr in zip(g_syn, g_real):
        if gs.dim() < 2:
            continue
        gs, gr = gs.reshape(gs.shape[0], -1), gr.reshape(gr.shape[0], -1)
        cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + 1e-6)
        total = total + (1 - cos).sum()
    return total


def class_gradients(net: nn.Module, weights: list[torch.Tensor], x: torch.Tensor, num_classes: int,
                    create_graph: bool) -> list[list[torch.Tensor]]:
    """Per class ``c``: gradient of the cross-entropy of ``c``'s rows of the class-grouped ``x`` w.r.t. ``weights``."""
    grads = []
    for c, part in enumerate(x.chunk(num_classes)):
        target = torch.full((part.shape[0],), c, dtype=torch.long, device=part.device)
        loss = F.cross_entropy(net(part), target)
        g = torch.autograd.grad(loss, weights, create_graph=create_graph)
        grads.append(list(g) if create_graph else [t.detach() for t in g])
    return grads


def train_on_synthetic(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, labels: torch.Tensor,
                       epochs: int, batch: int, augment: AudioAugment | None,
                       generator: torch.Generator | None) -> None:
    """The inner loop: ``epochs`` epochs of ``net`` on the (detached) synthetic set."""
    n = x.shape[0]
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator).to(x.device)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            xb = x[idx] if augment is None else augment(x[idx], generator)
            loss = F.cross_entropy(net(xb), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def distill_dc(
    train: FeatureSet, cpc: int, settings: DCSettings | None = None, device: torch.device | str = "cpu",
    generator: torch.Generator | None = None, progress: bool = True, on_step: StepCallback | None = None,
    embed: Embed | None = None,
) -> SyntheticSet:
    """``cpc`` synthetic clips per class by gradient matching (DSA when ``settings.dsa``; ``embed``: the space a
    herding start is chosen in).

    Per iteration: a fresh network; ``outer`` times match every class's synthetic gradient to a real one
    (real gradients detached, ``create_graph`` on the synthetic side only) and step the clips (SGD, momentum
    0.5), then train the network ``inner`` epochs on the clips.  ``on_step`` (a ``dm.StepCallback``) gets
    the matching loss summed over classes and averaged over the outer loops.  Raises
    :class:`NonFiniteLossError` when the loss is NaN/inf.
    """
    settings = settings or DCSettings()
    check_clips_per_class(train, cpc)
    device = torch.device(device)
    start = time.perf_counter()
    C = train.num_classes
    outer, inner = settings.loops(cpc)
    method = "dsa" if settings.dsa else "dc"
    syn, labels = init_synthetic(train, cpc, settings.init, generator, device, embed)
    real = ClassBatches(train, settings.batch_real, device)
    augment = AudioAugment() if settings.dsa else None
    opt_img = torch.optim.SGD([syn], lr=settings.lr_img, momentum=settings.momentum)
    losses: list[float] = []
    bar = tqdm(range(settings.iterations), desc=method.upper(), disable=not progress, leave=False)
    for it in bar:
        net = fresh_network(settings.model, C, train.input_shape, settings.model_kwargs, generator, device)
        weights = [p for p in net.parameters() if p.dim() >= 2]
        opt_net = torch.optim.SGD(net.parameters(), lr=settings.lr_net)
        loss_sum = 0.0
        for ol in range(outer):
            xr, xs = real.sample(generator), syn
            if augment is not None:
                pr, ps = siamese_params(augment, C, (real.per_class, cpc), syn.shape, generator, device)
                xr, xs = augment.apply(xr, pr), augment.apply(xs, ps)
            g_real = class_gradients(net, weights, xr, C, create_graph=False)
            g_syn = class_gradients(net, weights, xs, C, create_graph=True)
            loss = sum((gradient_distance(gs, gr) for gs, gr in zip(g_syn, g_real)), syn.new_zeros(()))
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"{method.upper()}: matching loss became {loss.item()} at iteration {it + 1}, outer loop "
                    f"{ol + 1}; lower lr_img (now {settings.lr_img})"
                )
            opt_img.zero_grad(set_to_none=True)
            loss.backward()
            opt_img.step()
            loss_sum += loss.item()
            if ol == outer - 1:
                break
            train_on_synthetic(net, opt_net, syn.detach(), labels, inner, settings.batch_train, augment, generator)
        losses.append(loss_sum / outer)
        bar.set_postfix(loss=round(losses[-1], 4))
        if on_step is not None:
            on_step({"iteration": it + 1, "loss": losses[-1], "seconds": time.perf_counter() - start})
    meta = {"clips_per_class": cpc, "settings": asdict(settings), "outer_loops": outer, "inner_loops": inner,
            "dataset": train.meta.get("dataset"), "seconds": round(time.perf_counter() - start, 2),
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None}
    return SyntheticSet(syn.detach().cpu(), labels.cpu(), list(train.classes), method, None, None, meta)


def distill_dsa(
    train: FeatureSet, cpc: int, settings: DCSettings | None = None, device: torch.device | str = "cpu",
    generator: torch.Generator | None = None, progress: bool = True, on_step: StepCallback | None = None,
) -> SyntheticSet:
    """:func:`distill_dc` with siamese augmentation (``settings.dsa`` forced on; default: the DSA paper's)."""
    settings = DCSettings(**{**asdict(settings or DCSettings()), "dsa": True})
    return distill_dc(train, cpc, settings, device, generator, progress, on_step)
