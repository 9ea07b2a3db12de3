"""Transparent huge pages for torch's CPU tensors: what they save in ConvNet training steps.

The default ConvNet's activations on a batch of FD-MFCC clips are tens of MB each (100 x 128 x 20 x 51 floats:
52 MB).  glibc hands every allocation over 32 MB to ``mmap`` and gives it back on free, so each training step
faults its activations in again page by page (4 KiB each): measured here, a third of the CPU time went to the
kernel.  ``THP_MEM_ALLOC_ENABLE=1`` makes torch ask for 2 MiB pages for large tensors (``madvise``), 512x fewer
faults.  ``import ddfad_apps`` sets it (unless you set it yourself).

Each variant runs in a fresh process (torch reads the variable once), interleaved A B A B, since this machine
is shared and noisy; printed: wall and CPU seconds, minor page faults, and the ratio of medians.

    python scripts/bench_allocator.py [--batch 100] [--steps 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
torch.set_num_threads(1)
from ddfad_apps.models.registry import build_model
batch, steps = int(sys.argv[1]), int(sys.argv[2])
net = build_model("convnet", 10, (3, 20, 51))
opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
x, y = torch.randn(batch, 3, 20, 51), torch.randint(0, 10, (batch,))
def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x), y).backward()
    opt.step()
step()
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(steps):
    step()
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"wall": time.perf_counter() - t0, "user": r1.ru_utime - r0.ru_utime,
                  "sys": r1.ru_stime - r0.ru_stime, "minflt": r1.ru_minflt - r0.ru_minflt}))
"""

VARIANTS = {"4 KiB pages (THP_MEM_ALLOC_ENABLE=0)": "0", "huge pages (THP_MEM_ALLOC_ENABLE=1)": "1"}


def run(thp: str, batch: int, steps: int) -> dict[str, float]:
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": thp, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(batch), str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        print(f"kernel THP setting: {f.read().strip()} (madvise or always is needed)")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        for name, thp in VARIANTS.items():  # interleaved
            results[name].append(run(thp, args.batch, args.steps))
            m = results[name][-1]
            print(f"round {r} {name}: wall {m['wall']:.2f} s, user {m['user']:.2f} s, sys {m['sys']:.2f} s, "
                  f"{m['minflt']:.0f} faults", flush=True)
    med = {name: {k: statistics.median(m[k] for m in ms) for k in ("wall", "user", "sys", "minflt")}
           for name, ms in results.items()}
    base, thp = (med[n] for n in VARIANTS)
    print(f"\nConvNet (default width), batch {args.batch} of (3, 20, 51), {args.steps} SGD steps, 1 thread; "
          f"medians of {args.rounds} interleaved rounds:")
    for name, m in med.items():
        print(f"  {name:38s} wall {m['wall']:6.2f} s  cpu {m['user'] + m['sys']:6.2f} s (sys {m['sys']:5.2f})  "
              f"faults {m['minflt']:9.0f}")
    print(f"  huge pages / 4 KiB pages: wall {thp['wall'] / base['wall']:.2f}x, "
          f"cpu {(thp['user'] + thp['sys']) / (base['user'] + base['sys']):.2f}x, "
          f"faults {thp['minflt'] / base['minflt']:.3f}x")


if __name__ == "__main__":
    main()
