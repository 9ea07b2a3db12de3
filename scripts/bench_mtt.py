"""MTT iterations side by side: ours (lean and full unroll) against a re-implementation of the MTT authors' loop.

Why: the lean unroll (``ddfad_apps/distill/unroll.py``) is the default only if it gives the reference's loss and
meta-gradients at a fraction of its memory and not much more time; this measures all three in one run.

The reference (``reference_iteration``) is written here from the MTT paper (Cazenavette et al., CVPR 2022): a
network whose forward takes one flat parameter vector, a growing list of student parameter vectors, one
``torch.autograd.grad(ce, params[-1], create_graph=True)`` per step, the parameter distance normalised by the
expert's own move, ``.backward()``.  All three see the same ConvNet, the same expert segment (random: start =
the initialisation, target = start moved by 1% noise), the same synthetic clips, mini-batches and learning rate,
augmentation off.

- seconds per iteration (min / median over ``--rounds``), timed in interleaved rounds (A B C A B C) so a busy
  minute on a shared machine does not favour one of them; segments/s = iterations/s (one segment per iteration);
- peak memory of one iteration above the process's base, each in a fresh process (``VmHWM`` of
  ``/proc/self/status`` after a tiny warm-up iteration and after the measured one; on CUDA the allocator's peak);
- the cross-check: relative difference of loss, synthetic-clip gradient and lr gradient against the reference.

    python scripts/bench_mtt.py                          # fast preset, 3 rounds
    python scripts/bench_mtt.py --preset paper --rounds 1
    python scripts/bench_mtt.py --threads 2,1           # thread counts timed in the same interleaved rounds
    python scripts/bench_mtt.py --segments 2            # + the lean unroll matching 2 segments at once in 2
                                                        #   threads of one intra-op thread (MTTSettings.segments)
    python scripts/bench_mtt.py --backprop-steps 4      # + both unrolls back-propagating through the last 4 steps
                                                        #   only (MTTSettings.backprop_steps; an approximation:
                                                        #   its "rel. diff" columns are its gradient error)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads OpenMP: spinning waits cost on shared cores

import torch
import torch.nn.functional as F
from torch import nn

from ddfad_apps.distill.mtt import concurrently
from ddfad_apps.distill.unroll import StepBatch, match_loss, plan_batches, unroll
from ddfad_apps.models import ParamSpec, build_model, flatten_params

SHAPE = (3, 20, 51)  # FSDD FD-MFCC clip at a 20 ms hop (--frames 101: a 10 ms hop)
CLASSES = 10
CLIPS = 100  # CPC 10
IMPLS = ("reference", "full", "lean")


@dataclass(frozen=True)
class Preset:
    width: int
    syn_steps: int
    batch_syn: int | None


PRESETS = {"fast": Preset(32, 12, 50), "paper": Preset(128, 30, None)}


class FlatParamNet(nn.Module):
    """The reference's re-parameterised network: ``forward(x, flat)`` runs the wrapped module on weights cut out
    of one flat vector, so a list of such vectors is the student's trajectory."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.spec = ParamSpec.from_module(module)

    def forward(self, x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(self.module, self.spec.unflatten(flat), (x,))


@dataclass
class Problem:
    net: nn.Module
    spec: ParamSpec
    syn: torch.Tensor
    labels: torch.Tensor
    lr: float
    start: torch.Tensor
    target: torch.Tensor
    plan: list[StepBatch]


def make_problem(preset: Preset, device: torch.device, steps: int | None = None, clips: int = CLIPS,
                 dtype: torch.dtype = torch.float32) -> Problem:
    """The same segment, clips and batches for every implementation (seeded), in ``dtype``."""
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    net = build_model("convnet", CLASSES, SHAPE, width=preset.width).to(device=device, dtype=dtype)
    start = flatten_params(net)
    target = start + 0.01 * start.abs().mean() * torch.randn(start.shape, generator=gen, dtype=dtype).to(device)
    syn = torch.randn(clips, *SHAPE, generator=gen, dtype=dtype).to(device)
    labels = torch.arange(CLASSES).repeat_interleave(max(1, clips // CLASSES))[:clips].to(device)
    plan = plan_batches(clips, steps or preset.syn_steps, preset.batch_syn, gen, None, SHAPE[1], SHAPE[2], device)
    return Problem(net, ParamSpec.from_module(net), syn, labels, 0.01, start, target, plan)


def reference_iteration(p: Problem) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The MTT authors' loop as the paper describes it (written here, not copied): autograd through the unroll."""
    student = FlatParamNet(p.net)
    syn = p.syn.clone().requires_grad_(True)
    syn_lr = torch.tensor(p.lr, device=syn.device).requires_grad_(True)
    params = [p.start.clone().requires_grad_(True)]
    for batch in p.plan:
        x = syn if batch.idx is None else syn[batch.idx]
        y = p.labels if batch.idx is None else p.labels[batch.idx]
        ce = F.cross_entropy(student(x, params[-1]), y)
        grad = torch.autograd.grad(ce, params[-1], create_graph=True)[0]
        params.append(params[-1] - syn_lr * grad)
    n = p.start.numel()
    param_loss = F.mse_loss(params[-1], p.target, reduction="sum") / n
    param_dist = F.mse_loss(p.start, p.target, reduction="sum") / n
    loss = param_loss / param_dist
    loss.backward()
    return loss.detach(), syn.grad, syn_lr.grad


def ours_iteration(p: Problem, kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One MTT iteration as ``MTTDistiller.step`` does it, with the ``full`` or the ``lean`` unroll (``lean/4``:
    back-propagating through the last 4 steps only)."""
    spec, net = p.spec, p.net

    def student_loss(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(torch.func.functional_call(net, spec.unflatten(flat), (x,)), y)

    syn = p.syn.clone().requires_grad_(True)
    lr = torch.tensor(p.lr, device=syn.device).requires_grad_(True)
    name, _, window = kind.partition("/")
    fn = unroll(name, int(window) if window else None)
    loss = match_loss(fn(student_loss, syn, p.labels, lr, p.start, p.plan), p.start, p.target)
    loss.backward()
    return loss.detach(), syn.grad, lr.grad


def iteration(p: Problem, impl: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return reference_iteration(p) if impl == "reference" else ours_iteration(p, impl)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _vm_hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def child_memory(preset: str, impl: str, device: torch.device) -> dict:
    """Run in a fresh process: peak memory of one iteration above what the process held before it (bytes)."""
    tiny = make_problem(PRESETS[preset], device, steps=1, clips=CLASSES)
    iteration(tiny, impl)  # libraries' lazy set-up (thread pools, kernels) belongs to the base
    p = make_problem(PRESETS[preset], device)
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        base = _vm_hwm_kib() * 1024
    iteration(p, impl)
    _sync(device)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _vm_hwm_kib() * 1024
    return {"peak_above_base": peak - base}


def measure_memory(preset: str, impl: str, device: torch.device, threads: int) -> float:
    cmd = [sys.executable, __file__, "--child", impl, "--preset", preset, "--device", str(device),
           "--threads", str(threads), "--frames", str(SHAPE[2])]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"memory measurement of {impl} ({preset}) failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_above_base"]


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def cross_check_float64(preset: str, device: torch.device) -> dict[str, tuple[float, float, float]]:
    """Relative differences of loss, clip gradient and lr gradient against the reference, all in float64.

    In float32 this segment's meta-gradient is only good to about 1e-2 (rounding in 30 steps of a normalised
    distance whose numerator is tiny), so float32 runs of any two implementations differ at that level; float64
    shows whether the implementations compute the same function."""
    p = make_problem(PRESETS[preset], device, dtype=torch.float64)
    results = {impl: iteration(p, impl) for impl in IMPLS}
    ref = results["reference"]
    return {impl: tuple(_rel(a, b) for a, b in zip(results[impl], ref)) for impl in IMPLS if impl != "reference"}


def bench(preset: str, rounds: int, device: torch.device, threads: list[int], memory: bool,
          float64_check: bool = True, segments: int = 1, backprop_steps: int | None = None) -> None:
    """Interleaved rounds over every (implementation, thread count); the first thread count is the reference's
    baseline for the speed ratio and the one memory is measured with.  ``segments > 1`` adds the row
    ``lean x K``: K segments matched at once by :func:`ddfad_apps.distill.mtt.concurrently` (K threads of one
    intra-op thread, each with its own copy of the network, as ``MTTDistiller`` does); ``backprop_steps`` adds
    ``lean/W`` and ``full/W``, the truncated unrolls."""
    p = make_problem(PRESETS[preset], device)
    iteration(make_problem(PRESETS[preset], device, steps=1, clips=CLASSES), "lean")  # warm-up
    impls = IMPLS + ((f"lean/{backprop_steps}", f"full/{backprop_steps}") if backprop_steps else ())
    cases = [(impl, n) for n in threads for impl in impls]
    copies = [make_problem(PRESETS[preset], device) for _ in range(segments)] if segments > 1 else []
    if copies:
        cases.append((f"lean x {segments}", segments))
    times: dict[tuple[str, int], list[float]] = {c: [] for c in cases}
    results = {}
    for _ in range(rounds):
        for impl, n in cases:
            torch.set_num_threads(n if not impl.startswith("lean x") else threads[0])
            _sync(device)
            t0 = time.perf_counter()
            if impl.startswith("lean x"):
                results[impl] = concurrently(lambda q: iteration(q, "lean"), copies, segments)[0]
            else:
                results[impl] = iteration(p, impl)
            _sync(device)
            times[impl, n].append((time.perf_counter() - t0) / (segments if impl.startswith("lean x") else 1))
    mem = {impl: measure_memory(preset, impl, device, threads[0]) for impl in IMPLS} if memory else {}
    check64 = cross_check_float64(preset, device) if float64_check else {}
    ref = results["reference"]
    cfg = PRESETS[preset]
    print(f"\n{preset} preset, clips {SHAPE}: ConvNet width {cfg.width}, {cfg.syn_steps} steps, batch "
          f"{cfg.batch_syn or CLIPS} of {CLIPS} clips, {device}, {rounds} round(s); speed ratio against the "
          f"reference on {threads[0]} thread(s), memory on {threads[0]} thread(s)")
    print("| unroll | threads | s/segment min / median | segments/s (median) | vs reference | "
          "peak memory above base | rel. diff loss / d syn / d lr (float32) | same, float64 |")
    print("|---|---|---|---|---|---|---|---|")
    ref_med = statistics.median(times["reference", threads[0]])
    for impl, n in cases:
        t = times[impl, n]
        med = statistics.median(t)
        m = "-"
        if mem and impl in mem and n == threads[0]:
            m = f"{mem[impl] / 2**30:.2f} GB" + (f" ({mem[impl] / mem['reference']:.2f}x)" if impl != "reference" else "")
        loss, gs, gl = results[impl]
        check = "-" if impl == "reference" else \
            f"{_rel(loss, ref[0]):.1e} / {_rel(gs, ref[1]):.1e} / {_rel(gl, ref[2]):.1e}"
        c64 = "-" if impl not in check64 else " / ".join(f"{v:.1e}" for v in check64[impl])
        print(f"| {impl} | {n} | {min(t):.2f} / {med:.2f} | {1 / med:.3f} | {ref_med / med:.2f}x | {m} | {check} "
              f"| {c64} |")


def main(argv: list[str] | None = None) -> None:
    global SHAPE  # --frames sets the clip shape every problem is built with
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=[*PRESETS, "both"], default="fast")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default=str(torch.get_num_threads()),
                    help="thread count(s), comma-separated (e.g. 2,1): each is timed in the interleaved rounds")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--no-memory", action="store_true", help="skip the fresh-process memory measurements")
    ap.add_argument("--frames", type=int, default=SHAPE[2], help="frames per clip (51: 20 ms hop, 101: 10 ms hop)")
    ap.add_argument("--no-float64-check", action="store_true", help="skip the float64 cross-check")
    ap.add_argument("--segments", type=int, default=1, help="K > 1: also time K segments matched at once")
    ap.add_argument("--backprop-steps", type=int, default=None,
                    help="W: also time both unrolls back-propagating through the last W steps only")
    ap.add_argument("--child", choices=IMPLS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    try:
        threads = [int(t) for t in args.threads.split(",")]
    except ValueError:
        ap.error(f"--threads takes comma-separated integers, got {args.threads!r}")
    if any(t < 1 for t in threads):
        ap.error(f"--threads must be >= 1, got {args.threads!r}")
    torch.set_num_threads(threads[0])
    device = torch.device(args.device)
    SHAPE = (SHAPE[0], SHAPE[1], args.frames)
    if args.child:
        print(json.dumps(child_memory(args.preset, args.child, device)))
        return
    for preset in PRESETS if args.preset == "both" else (args.preset,):
        bench(preset, args.rounds, device, threads, not args.no_memory, not args.no_float64_check, args.segments,
              args.backprop_steps)


if __name__ == "__main__":
    main()
