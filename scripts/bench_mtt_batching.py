"""Does matching several expert segments in one batched unroll give more segments per CPU second?  (Issue 15.)

The fast preset's student (ConvNet width 32, depth 3, instance norm, 12 steps, batch 50 of 100 FD-MFCC clips) is
run for ``K`` segments at once as one grouped network: the K students' convolutions become one convolution with
``groups=K`` over the K students' batches stacked as channels, their instance norms one group norm over ``K x
width`` channels, their classifiers one batched matrix product; the K losses are summed, so each student's
gradients are its own.  One iteration = the unroll with ``create_graph`` and the backward to the clips and lr
(the reference loop's shape).  Each ``K`` runs in a fresh process, in interleaved rounds, and is timed in CPU
seconds of the process (``time.process_time``), which a shared machine disturbs far less than wall time.

    python scripts/bench_mtt_batching.py                  # K = 1, 2, 4; 2 rounds
    python scripts/bench_mtt_batching.py --ks 1,4,8 --rounds 3

Measured on this 2-core CPU (one thread): 0.37 / 0.35 / 0.36 segments per CPU second for K = 1 / 2 / 4 - no
gain: the step is bound by arithmetic and memory traffic on 50 x 32 x 20 x 51 activations, not by per-operation
overhead, so batching only adds work in proportion.  (``torch.func.vmap`` over stacked trajectories was 1.6x
slower; replacing average pooling or group norm by reshapes and reductions was 1.1-1.4x slower.)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

B, C, H, W, WIDTH, CLASSES, STEPS, CLIPS = 50, 3, 20, 51, 32, 10, 12, 100


def child(k: int, iters: int) -> float:
    """CPU seconds per segment of ``k`` segments unrolled together (runs in its own process)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    torch.manual_seed(0)
    shapes, cin, h, w = [], C, H, W
    for _ in range(3):
        shapes += [(k * WIDTH, cin, 3, 3), (k * WIDTH,), (k * WIDTH,), (k * WIDTH,)]
        cin, h, w = WIDTH, h // 2, w // 2
    shapes += [(k, CLASSES, WIDTH * h * w), (k, CLASSES)]
    sizes = [torch.Size(s).numel() for s in shapes]

    def loss_fn(flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # x (k, B, C, H, W)
        p = [t.view(s) for t, s in zip(flat.split(sizes), shapes)]
        a = x.transpose(0, 1).reshape(B, k * C, H, W)
        for d in range(3):
            cw, cb, gw, gb = p[4 * d : 4 * d + 4]
            a = F.avg_pool2d(F.relu(F.group_norm(F.conv2d(a, cw, cb, padding=1, groups=k), k * WIDTH, gw, gb)), 2)
        logits = torch.einsum("bkf,kcf->bkc", a.reshape(B, k, -1), p[-2]) + p[-1]
        return F.cross_entropy(logits.reshape(B * k, CLASSES), y.t().reshape(-1), reduction="sum") / B

    syn = torch.randn(CLIPS, C, H, W, requires_grad=True)
    labels = torch.arange(CLASSES).repeat_interleave(CLIPS // CLASSES)
    start = torch.randn(sum(sizes)) * 0.05
    lr = torch.tensor(0.01, requires_grad=True)
    gen = torch.Generator().manual_seed(1)

    def iteration() -> None:
        w = start.clone().requires_grad_(True)
        for _ in range(STEPS):
            idx = torch.stack([torch.randperm(CLIPS, generator=gen)[:B] for _ in range(k)])
            (g,) = torch.autograd.grad(loss_fn(w, syn[idx], labels[idx]), w, create_graph=True)
            w = w - lr * g
        (w - start).square().sum().backward()

    iteration()  # warm-up
    t = time.process_time()
    for _ in range(iters):
        iteration()
    return (time.process_time() - t) / iters / k


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ks", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--iters", type=int, default=2)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(child(args.child, args.iters))
        return
    ks = [int(k) for k in args.ks.split(",")]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": "1"}
    seconds: dict[int, list[float]] = {k: [] for k in ks}
    for _ in range(args.rounds):
        for k in ks:
            out = subprocess.run([sys.executable, __file__, "--child", str(k), "--iters", str(args.iters)],
                                 capture_output=True, text=True, env=env, check=True)
            seconds[k].append(float(out.stdout.strip().splitlines()[-1]))
    print("| K segments per unroll | CPU s per segment (min / median) | segments per CPU second | vs K=1 |")
    print("|---|---|---|---|")
    base = sorted(seconds[ks[0]])[len(seconds[ks[0]]) // 2]
    for k in ks:
        med = sorted(seconds[k])[len(seconds[k]) // 2]
        print(f"| {k} | {min(seconds[k]):.2f} / {med:.2f} | {1 / med:.3f} | {base / med:.2f}x |")


if __name__ == "__main__":
    main()
