"""The MTT student unroll, two ways: straightforward (keeps every step's graph) and memory-lean (exact, recomputes).

MTT takes ``N`` SGD steps ``w_{k+1} = w_k - lr * g(w_k, x_k)`` from an expert's parameters and differentiates the
end point with respect to the synthetic clips ``x`` and the learning rate ``lr``.  Differentiating through the
unroll with autograd (:func:`unroll_full`, what the MTT authors do) keeps the activations and the double-backward
graph of all ``N`` steps alive at once, so memory grows with ``N x batch``.

:func:`unroll_lean` gives the same values and gradients while holding one step's graph at a time: its forward
keeps only the flat parameters ``w_k`` of every step (``N x P`` floats, no graph); its backward walks the steps in
reverse, recomputes step ``k``'s gradient with ``create_graph`` and propagates the vector-Jacobian products

    v_N = dL/dw_N,   dL/dw_k = v_{k+1} - lr * H_k v_{k+1},   dL/dx_k += -lr * d(g_k . v_{k+1})/dx_k,
    dL/dlr += -g_k . v_{k+1}

(``H_k`` is the Hessian of the student loss at ``w_k``: one double-backward of ``g_k . v`` gives both products).
The cost is one extra first-order step per unrolled step.  Which clips each step sees and how they are augmented
is drawn once, before the unroll (:func:`plan_batches`), so the backward replays exactly the forward's batches.

BatchNorm in train mode normalises with batch statistics, so recomputed steps see the same outputs; its running
statistics (unused in train mode) are updated once more per step by the recomputation.

:func:`truncated` is an approximation for more matching per CPU second: the student still takes all ``N`` steps,
but the meta-gradient flows only through the last ``W`` of them (truncated back-propagation, as in RaT-BPTT,
Feng et al., ICLR 2024).  The first ``N - W`` steps are plain first-order SGD steps (no graph, no recomputation);
their summed gradient ``S`` enters as ``w_{N-W} = w_0 - lr * S``, so ``lr`` keeps the head's direct term and only
the head's second-order terms (how ``x`` and ``lr`` change the head's gradients) are dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ddfad_apps.distill.augment import AudioAugment, AugmentParams

LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
"""``loss(flat_params, x, y) -> scalar``: the student's training loss on one batch of synthetic clips."""

UNROLLS: tuple[str, ...] = ("lean", "full")


@dataclass(frozen=True)
class StepBatch:
    """What one unrolled step trains on: rows of the synthetic set (``None``: all) and their augmentation."""

    idx: torch.Tensor | None
    aug: AugmentParams | None


def plan_batches(n: int, syn_steps: int, batch_syn: int | None, generator: torch.Generator,
                 augment: AudioAugment | None, coeffs: int, frames: int,
                 device: torch.device | str = "cpu") -> list[StepBatch]:
    """Draw every step's mini-batch and augmentation up front, so an unroll can be replayed exactly.

    ``n`` synthetic clips are visited in a random order, ``batch_syn`` at a time (``None`` or ``>= n``: all every
    step), reshuffled when the order runs out.  The generator is consumed in the same order as MTT's in-loop draws
    (one permutation, then per step: a reshuffle when needed, then the augmentation), so a seed gives the same run.
    """
    if n < 1 or syn_steps < 1:
        raise ValueError(f"an unroll needs at least one clip and one step; got n={n}, syn_steps={syn_steps}")
    bs = n if batch_syn is None else min(batch_syn, n)
    if bs < 1:
        raise ValueError(f"batch_syn must be >= 1 or None, got {batch_syn}")
    order = torch.randperm(n, generator=generator)
    plan: list[StepBatch] = []
    for step in range(syn_steps):
        idx: torch.Tensor | None = None
        if bs < n:
            j = step * bs % n
            idx = order[j : j + bs]
            if len(idx) < bs:
                order = torch.randperm(n, generator=generator)
                idx = order[:bs]
            idx = idx.to(device)
        aug = augment.sample(bs, coeffs, frames, device, generator) if augment is not None else None
        plan.append(StepBatch(idx, aug))
    return plan


def batch_inputs(syn: torch.Tensor, labels: torch.Tensor, batch: StepBatch,
                 augment: AudioAugment | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The (augmented) clips and labels of one step."""
    x, y = (syn, labels) if batch.idx is None else (syn[batch.idx], labels[batch.idx])
    if batch.aug is not None:
        if augment is None:
            raise ValueError("the plan has augmentation parameters but no AudioAugment was given to apply them")
        x = augment.apply(x, batch.aug)
    return x, y


def match_loss(final: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MTT's loss: squared distance of the student's end point to the expert's, over the expert's own move."""
    return (final - target).square().sum() / (start - target).square().sum()


def unroll_full(loss_fn: LossFn, syn: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, start: torch.Tensor,
                plan: Sequence[StepBatch], augment: AudioAugment | None = None) -> torch.Tensor:
    """The student's end point after ``len(plan)`` steps, differentiable by plain autograd (every step's graph kept)."""
    grad = torch.func.grad(loss_fn)
    w = start
    for batch in plan:
        x, y = batch_inputs(syn, labels, batch, augment)
        w = w - lr * grad(w, x, y)
    return w


def _first_order_grad(loss_fn: LossFn, w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    with torch.enable_grad():
        w = w.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_fn(w, x.detach(), y), w)
    return g


class _LeanUnroll(torch.autograd.Function):
    """Forward: the unroll without a graph, keeping ``w_k``.  Backward: recompute each step, reverse VJPs."""

    @staticmethod
    def forward(ctx, syn: torch.Tensor, lr: torch.Tensor, start: torch.Tensor, loss_fn: LossFn,
                labels: torch.Tensor, plan: Sequence[StepBatch], augment: AudioAugment | None) -> torch.Tensor:
        w = start.detach()
        kept = []
        for batch in plan:
            kept.append(w)
            x, y = batch_inputs(syn, labels, batch, augment)
            w = w - lr * _first_order_grad(loss_fn, w, x, y)
        ctx.save_for_backward(syn, lr, *kept)
        ctx.loss_fn, ctx.labels, ctx.plan, ctx.augment = loss_fn, labels, plan, augment
        return w

    @staticmethod
    def backward(ctx, v: torch.Tensor):
        syn, lr, *kept = ctx.saved_tensors
        need_syn, need_lr, need_start = ctx.needs_input_grad[:3]
        lr_d = lr.detach()
        g_syn = torch.zeros_like(syn) if need_syn else None
        g_lr = torch.zeros_like(lr) if need_lr else None
        v = v.detach()
        for w_k, batch in zip(reversed(kept), reversed(ctx.plan)):
            with torch.enable_grad():
                w = w_k.detach().requires_grad_(True)
                rows, y = (syn.detach(), ctx.labels) if batch.idx is None else \
                    (syn.detach()[batch.idx], ctx.labels[batch.idx])
                rows.requires_grad_(need_syn)
                x, _ = batch_inputs(rows, y, StepBatch(None, batch.aug), ctx.augment)
                (g,) = torch.autograd.grad(ctx.loss_fn(w, x, y), w, create_graph=True)
                gv = torch.dot(g, v)
                wrt = (w, rows) if need_syn else (w,)
                d = torch.autograd.grad(gv, wrt)
            if need_lr:
                g_lr -= gv.detach()
            if need_syn:
                if batch.idx is None:
                    g_syn.sub_(lr_d * d[1])
                else:
                    g_syn.index_add_(0, batch.idx, -lr_d * d[1])
            v = v - lr_d * d[0]
        return g_syn, g_lr, (v if need_start else None), None, None, None, None


def unroll_lean(loss_fn: LossFn, syn: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, start: torch.Tensor,
                plan: Sequence[StepBatch], augment: AudioAugment | None = None) -> torch.Tensor:
    """Same end point and gradients as :func:`unroll_full`, holding one step's graph at a time (module docstring)."""
    if lr.dim() != 0:
        raise ValueError(f"the lean unroll takes a scalar learning rate, got shape {tuple(lr.shape)}")
    return _LeanUnroll.apply(syn, lr, start, loss_fn, labels, plan, augment)


def truncated(inner: Callable[..., torch.Tensor], window: int) -> Callable[..., torch.Tensor]:
    """``inner`` (an unroll) differentiating only the last ``window`` steps of a plan (module docstring).

    The end point is the same as ``inner``'s; the gradients are exact for ``window >= len(plan)``.
    """
    if window < 1:
        raise ValueError(f"the meta-gradient must flow through at least one step, got window={window}")

    def run(loss_fn: LossFn, syn: torch.Tensor, labels: torch.Tensor, lr: torch.Tensor, start: torch.Tensor,
            plan: Sequence[StepBatch], augment: AudioAugment | None = None) -> torch.Tensor:
        cut = max(0, len(plan) - window)
        if cut == 0:
            return inner(loss_fn, syn, labels, lr, start, plan, augment)
        w, total, lr_d = start.detach(), torch.zeros_like(start), lr.detach()
        for batch in plan[:cut]:
            x, y = batch_inputs(syn.detach(), labels, batch, augment)
            g = _first_order_grad(loss_fn, w, x, y)
            total += g
            w = w - lr_d * g
        return inner(loss_fn, syn, labels, lr, start - lr * total, plan[cut:], augment)

    return run


def unroll(kind: str, window: int | None = None) -> Callable[..., torch.Tensor]:
    """The unroll function named ``kind`` (``'lean'`` or ``'full'``), differentiating the last ``window`` steps
    (:func:`truncated`; ``None``: all of them, exact)."""
    if kind == "lean":
        fn = unroll_lean
    elif kind == "full":
        fn = unroll_full
    else:
        raise ValueError(f"unknown MTT unroll {kind!r}; use one of {', '.join(UNROLLS)}")
    return fn if window is None else truncated(fn, window)
