"""The memory-lean MTT unroll gives the straightforward unroll's loss and meta-gradients, and keeps less.

Tiny ConvNet (width 8) on random inputs smaller than FD-MFCC clips, one thread: seconds.  Memory and speed on
real sizes are measured by ``scripts/bench_mtt.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ddfad_apps.distill.augment import AudioAugment
from ddfad_apps.distill.experts import ExpertBank
from ddfad_apps.distill.mtt import MTTDistiller, MTTSettings
from ddfad_apps.distill.unroll import (
    batch_inputs,
    match_loss,
    plan_batches,
    truncated,
    unroll,
    unroll_full,
    unroll_lean,
)
from ddfad_apps.features.dataset import FeatureSet
from ddfad_apps.models import ParamSpec, build_model, flatten_params

SHAPE = (3, 12, 20)
CLASSES = 4


pytestmark = pytest.mark.usefixtures("one_thread")


def _student(dtype: torch.dtype):
    torch.manual_seed(0)
    model = build_model("convnet", CLASSES, SHAPE, width=8).to(dtype)
    spec = ParamSpec.from_module(model)

    def loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(model, spec.unflatten(flat), (x,)), y)

    return model, loss


def _run(fn, loss, syn, labels, start, target, plan, augment, dtype, start_grad=False):
    s = syn.clone().requires_grad_(True)
    lr = torch.tensor(0.05, dtype=dtype, requires_grad=True)
    w0 = start.clone().requires_grad_(start_grad)
    value = match_loss(fn(loss, s, labels, lr, w0, plan, augment), start, target)
    value.backward()
    return value.detach(), s.grad, lr.grad, w0.grad


def _segment(dtype: torch.dtype, seed: int, augment: bool, batch_syn: int | None, steps: int = 5):
    """A student loss, 8 random clips, an expert start and target, and a plan of ``steps`` steps."""
    model, loss = _student(dtype)
    gen = torch.Generator().manual_seed(seed)
    syn = torch.randn(8, *SHAPE, generator=gen, dtype=dtype)
    labels = torch.arange(CLASSES).repeat(2)
    start = flatten_params(model)
    target = start + 0.05 * torch.randn(start.shape, generator=gen, dtype=dtype)
    aug = AudioAugment() if augment else None
    return loss, syn, labels, start, target, aug, plan_batches(8, steps, batch_syn, gen, aug, SHAPE[1], SHAPE[2])


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("augment", [False, True])
@pytest.mark.parametrize("batch_syn", [None, 3])
def test_lean_unroll_gives_the_full_unrolls_loss_and_gradients(dtype, tol, augment, batch_syn):
    loss, syn, labels, start, target, aug, plan = _segment(dtype, 1, augment, batch_syn)
    assert all((b.idx is None) == (batch_syn is None) for b in plan)
    assert all((b.aug is None) != augment for b in plan)

    full = _run(unroll_full, loss, syn, labels, start, target, plan, aug, dtype, start_grad=True)
    lean = _run(unroll_lean, loss, syn, labels, start, target, plan, aug, dtype, start_grad=True)
    assert 0 < float(full[0]) < 10
    assert abs(float(lean[0] - full[0])) <= tol * float(full[0])
    for name, a, b in zip(("syn", "lr", "start"), lean[1:], full[1:]):
        assert b.abs().max() > 0, f"the full unroll gave no {name} gradient: nothing would be compared"
        assert _rel(a, b) <= tol, f"{name} gradient differs: {_rel(a, b):.3g} relative"


def test_lean_unroll_keeps_only_parameters_for_the_backward():
    """What autograd holds between forward and backward: the lean unroll keeps the start parameters of every step
    (and the synthetic clips), not activations - several times less here, growing with batch and width."""
    model, loss = _student(torch.float32)
    syn = torch.randn(8, *SHAPE)
    labels = torch.arange(CLASSES).repeat(2)
    start = flatten_params(model)
    plan = plan_batches(8, 6, None, torch.Generator().manual_seed(0), None, SHAPE[1], SHAPE[2])

    def held_bytes(fn) -> int:
        """Bytes of the distinct storages saved in the graph of ``fn``'s output (walked node by node)."""
        s, lr = syn.clone().requires_grad_(True), torch.tensor(0.05, requires_grad=True)
        out = fn(loss, s, labels, lr, start, plan)
        storages: dict[int, int] = {}
        todo, seen = [out.grad_fn], set()
        while todo:
            node = todo.pop()
            if node is None or node in seen:
                continue
            seen.add(node)
            saved = list(getattr(node, "saved_tensors", ()))  # a custom autograd.Function's ctx
            saved += [getattr(node, a) for a in dir(node) if a.startswith("_saved_")]
            for t in saved:
                for u in t if isinstance(t, (tuple, list)) else (t,):
                    if isinstance(u, torch.Tensor):
                        storages[u.untyped_storage().data_ptr()] = u.untyped_storage().nbytes()
            todo.extend(f for f, _ in node.next_functions)
        return sum(storages.values())

    params_and_syn = (len(plan) + 1) * start.numel() * 4 + syn.numel() * 4
    lean = held_bytes(unroll_lean)
    assert lean <= params_and_syn * 1.05
    assert held_bytes(unroll_full) > 3 * lean


def _bank(spec_total: int, epochs: int, gen: torch.Generator) -> ExpertBank:
    steps = 0.01 * torch.randn(epochs, spec_total, generator=gen)
    start = 0.1 * torch.randn(1, spec_total, generator=gen)
    return ExpertBank(Path("unused"), [torch.cat([start, start + steps.cumsum(0)])], [0.0], lr=0.01)


@pytest.mark.parametrize("batch_syn,augment", [(None, False), (5, True)])
def test_one_mtt_iteration_is_the_same_with_either_unroll(batch_syn, augment):
    gen = torch.Generator().manual_seed(2)
    train = FeatureSet(torch.randn(24, *SHAPE, generator=gen), torch.arange(CLASSES).repeat(6),
                       [f"c{i}" for i in range(CLASSES)])
    total = ParamSpec.from_module(build_model("convnet", CLASSES, SHAPE, width=8)).total
    bank = _bank(total, 4, gen)
    syns = {}
    for kind in ("lean", "full"):
        settings = MTTSettings(syn_steps=4, expert_epochs=2, max_start_epoch=2, batch_syn=batch_syn,
                               iterations=1, augment=augment, unroll=kind)
        d = MTTDistiller(train, 2, bank, settings, "convnet", {"width": 8}, seed=5)
        before = d.syn.detach().clone()
        rec = d.step()
        syns[kind] = (before, d.syn.detach().clone(), d.syn_lr.item(), rec["loss"])
    (b0, lean, lr_lean, loss_lean), (b1, full, lr_full, loss_full) = syns["lean"], syns["full"]
    assert torch.equal(b0, b1)
    assert (full - b1).abs().max() > 1e-4, "the iteration did not move the clips: nothing would be compared"
    assert _rel(lean - b0, full - b1) <= 1e-5
    assert loss_lean == pytest.approx(loss_full, rel=1e-6)
    assert lr_lean == pytest.approx(lr_full, rel=1e-6) and lr_full != 0.01


def test_an_unknown_unroll_is_refused_by_name():
    with pytest.raises(ValueError, match="'fast'.*lean, full"):
        unroll("fast")
    gen = torch.Generator().manual_seed(0)
    train = FeatureSet(torch.randn(8, *SHAPE, generator=gen), torch.arange(CLASSES).repeat(2),
                       [f"c{i}" for i in range(CLASSES)])
    total = ParamSpec.from_module(build_model("convnet", CLASSES, SHAPE, width=8)).total
    with pytest.raises(ValueError, match="unknown MTT unroll 'leen'"):
        MTTDistiller(train, 1, _bank(total, 4, gen), MTTSettings(max_start_epoch=2, unroll="leen"), "convnet",
                     {"width": 8})


def test_segments_per_iteration_average_their_gradients_whatever_the_threads():
    """``segments=2`` matches two segments drawn in order and averages their meta-gradients; computing them in two
    threads gives the same loss and gradients as one after the other (and a bad count is refused by name)."""
    gen = torch.Generator().manual_seed(3)
    train = FeatureSet(torch.randn(24, *SHAPE, generator=gen), torch.arange(CLASSES).repeat(6),
                       [f"c{i}" for i in range(CLASSES)])
    total = ParamSpec.from_module(build_model("convnet", CLASSES, SHAPE, width=8)).total
    bank = _bank(total, 6, gen)

    def distiller(segments: int, threads: int) -> MTTDistiller:
        settings = MTTSettings(syn_steps=3, expert_epochs=2, max_start_epoch=4, batch_syn=5, iterations=1,
                               augment=True, segments=segments, segment_threads=threads, min_move=0.0)
        return MTTDistiller(train, 2, bank, settings, "convnet", {"width": 8}, seed=7)

    # by hand: two segments drawn in order from the same seed, each differentiated alone, averaged
    ref = distiller(1, 1)
    losses, grads, lr_grads = [], [], []
    for _ in range(2):
        _, start_p, target, plan = ref.draw_segment()
        loss = ref.segment_loss(start_p, target, plan)
        g_syn, g_lr = torch.autograd.grad(loss, [ref.syn, ref.syn_lr])
        losses.append(loss.detach()), grads.append(g_syn), lr_grads.append(g_lr)
    assert _rel(grads[0], grads[1]) > 1e-3, "both segments gave the same gradient: nothing would be averaged"
    results = {}
    for threads in (1, 2):
        d = distiller(2, threads)
        loss, _ = d.matched_segments()
        results[threads] = (loss, d.syn.grad.clone(), d.syn_lr.grad.clone())
        assert loss.item() == pytest.approx((losses[0] + losses[1]).item() / 2, rel=1e-6)
        assert _rel(d.syn.grad, (grads[0] + grads[1]) / 2) <= 1e-6
        assert d.syn_lr.grad.item() == pytest.approx(((lr_grads[0] + lr_grads[1]) / 2).item(), rel=1e-6)
    assert torch.equal(results[1][1], results[2][1])
    assert torch.get_num_threads() == 1, "the threads' setting leaked out of the iteration"
    with pytest.raises(ValueError, match="segments \\(0\\)"):
        distiller(0, 1)


@pytest.mark.parametrize("augment", [False, True])
def test_a_truncated_unroll_differentiates_only_its_last_steps(augment):
    """``backprop_steps=W``: the same end point; gradients equal to autograd through an unroll whose first steps'
    gradients are held constant (only ``lr``'s direct term kept), for both unrolls; exact again for W >= N."""
    dtype = torch.float64
    loss, syn, labels, start, target, aug, plan = _segment(dtype, 4, augment, 4)

    def by_hand(loss_fn, s, labels_, lr, w, plan_, augment_=None):
        """Steps 1-3 with their gradients detached (the graph keeps w_k = w_0 - lr * sum g), steps 4-5 autograd."""
        for b in plan_[:3]:
            x, y = batch_inputs(s.detach(), labels_, b, augment_)
            w = w - lr * torch.func.grad(loss_fn)(w.detach(), x, y)
        return unroll_full(loss_fn, s, labels_, lr, w, plan_[3:], augment_)

    ref = _run(by_hand, loss, syn, labels, start, target, plan, aug, dtype)
    exact = _run(unroll_full, loss, syn, labels, start, target, plan, aug, dtype)
    assert float(ref[0]) == pytest.approx(float(exact[0]), rel=1e-10)  # same end point
    assert _rel(ref[1], exact[1]) > 1e-3, "truncation changed nothing: the test would not tell"
    for kind in ("lean", "full"):
        got = _run(unroll(kind, 2), loss, syn, labels, start, target, plan, aug, dtype)
        assert float(got[0]) == pytest.approx(float(ref[0]), rel=1e-10)
        assert _rel(got[1], ref[1]) <= 1e-9 and _rel(got[2], ref[2]) <= 1e-9
        whole = _run(truncated(unroll_lean if kind == "lean" else unroll_full, 5), loss, syn, labels, start, target,
                     plan, aug, dtype)
        assert _rel(whole[1], exact[1]) <= 1e-9 and _rel(whole[2], exact[2]) <= 1e-9
    with pytest.raises(ValueError, match="at least one step"):
        truncated(unroll_lean, 0)
    gen = torch.Generator().manual_seed(0)
    train = FeatureSet(torch.randn(8, *SHAPE, generator=gen), torch.arange(CLASSES).repeat(2),
                       [f"c{i}" for i in range(CLASSES)])
    total = ParamSpec.from_module(build_model("convnet", CLASSES, SHAPE, width=8)).total
    with pytest.raises(ValueError, match="backprop_steps \\(21\\)"):
        MTTDistiller(train, 1, _bank(total, 4, gen), MTTSettings(max_start_epoch=2, backprop_steps=21), "convnet",
                     {"width": 8})
