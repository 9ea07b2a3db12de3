"""Training throughput of the evaluation networks on FD-MFCC-shaped inputs: clips/s of a full SGD step.

Why: the README quotes training times, distillation evaluates hundreds of networks, and NAS trains many; this
says which architecture/width/hop is affordable where, and whether ``channels_last`` or a thread setting
is worth making the default in the training loop (only if it wins by more than 10%).

One step = forward + cross-entropy + backward + SGD (momentum 0.9) on a random batch, as in
``ddfad_apps.training.train_model``.  Each row is timed for at least ``--seconds`` after warm-up steps; the
median of ``--repeats`` such timings is reported, because other processes share the CPU.  Variants of one
ConvNet are timed in interleaved rounds, so that a busy minute does not favour one of them; on the CPU
that includes ``OMP_WAIT_POLICY=PASSIVE`` against the default, each timing in a fresh process.

    python scripts/bench_train.py                 # CPU (and CUDA when present)
    python scripts/bench_train.py --quick         # without the width-32 ResNet18/VGG11 rows
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddfad_apps.models import build_model

FSDD_TRAIN_CLIPS = 2700
SHAPE_20MS = (3, 20, 51)  # FSDD: 1 s at 8 kHz, 20 ms hop
SHAPE_10MS = (3, 20, 101)  # 10 ms hop


@dataclass
class Case:
    model: str
    width: int
    shape: tuple[int, int, int]
    channels_last: bool = False
    threads: int | None = None  # None: torch's default

    @property
    def label(self) -> str:
        extra = []
        if self.channels_last:
            extra.append("channels_last")
        if self.threads is not None:
            extra.append(f"{self.threads} thread{'s' if self.threads > 1 else ''}")
        return f"{self.model} w{self.width} {self.shape[1]}x{self.shape[2]}" + (f" ({', '.join(extra)})" if extra else "")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Bench:
    """One case ready to run: model, batch and optimiser built once, so rounds can be interleaved."""

    def __init__(self, case: Case, device: torch.device, batch_size: int) -> None:
        torch.manual_seed(0)
        self.case, self.device, self.batch_size = case, device, batch_size
        self.model = build_model(case.model, 10, case.shape, width=case.width).to(device)
        self.x = torch.randn(batch_size, *case.shape, device=device)
        self.y = torch.randint(0, 10, (batch_size,), device=device)
        if case.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.x = self.x.contiguous(memory_format=torch.channels_last)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(self) -> None:
        loss = F.cross_entropy(self.model(self.x), self.y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def rate(self, seconds: float, warmup: int = 0) -> float:
        """Clips/s of full SGD steps run for at least ``seconds`` (and at least 3 steps)."""
        threads = torch.get_num_threads()
        if self.case.threads is not None:
            torch.set_num_threads(self.case.threads)
        try:
            for _ in range(warmup):
                self.step()
            _sync(self.device)
            steps, start = 0, time.perf_counter()
            while True:
                self.step()
                steps += 1
                if steps >= 3:
                    _sync(self.device)
                    elapsed = time.perf_counter() - start
                    if elapsed >= seconds:
                        return steps * self.batch_size / elapsed
        finally:
            torch.set_num_threads(threads)


def median_rates(benches: list[Bench], seconds: float, repeats: int) -> list[float]:
    """Median clips/s of each bench over ``repeats`` rounds that visit all benches in turn.

    Interleaving matters on a shared machine: load from other processes then hits every variant alike
    instead of whichever happened to run during a busy minute.
    """
    for b in benches:
        b.rate(0.0, warmup=3)
    rounds = [[b.rate(seconds) for b in benches] for _ in range(repeats)]
    return [statistics.median(r[i] for r in rounds) for i in range(len(benches))]


def table_cases(quick: bool) -> list[Case]:
    rows = [
        Case("convnet", 128, SHAPE_20MS), Case("convnet", 64, SHAPE_20MS),
        Case("resnet18", 64, SHAPE_20MS), Case("vgg11", 64, SHAPE_20MS),
        Case("resnet18", 32, SHAPE_20MS), Case("vgg11", 32, SHAPE_20MS),
        Case("convnet", 128, SHAPE_10MS), Case("convnet", 64, SHAPE_10MS),
    ]
    return [r for r in rows if not (quick and r.model != "convnet" and r.width == 32)]


def variant_cases(width: int, device: torch.device) -> list[Case]:
    """The default ConvNet first, then channels_last and (CPU) explicit thread counts."""
    variants = [Case("convnet", width, SHAPE_20MS), Case("convnet", width, SHAPE_20MS, channels_last=True)]
    if device.type == "cpu":
        for n in sorted({1, torch.get_num_threads()}):
            variants.append(Case("convnet", width, SHAPE_20MS, threads=n))
    return variants


def omp_policy_rates(width: int, seconds: float, repeats: int) -> dict[str, float]:
    """Median clips/s of the default ConvNet under each ``OMP_WAIT_POLICY`` (unset, PASSIVE), interleaved.

    The policy is read when the OpenMP runtime loads, i.e. at ``import torch``, so each timing runs in a fresh
    process.  PASSIVE makes idle OpenMP workers sleep instead of spinning; spinning workers steal the core
    from the thread they wait for whenever other processes also want the CPU.
    """
    rates: dict[str, list[float]] = {"default": [], "PASSIVE": []}
    for _ in range(repeats):
        for policy in rates:
            env = dict(os.environ)
            env.pop("OMP_WAIT_POLICY", None)
            if policy != "default":
                env["OMP_WAIT_POLICY"] = policy
            out = subprocess.run(
                [sys.executable, __file__, "--worker", str(width), "--seconds", str(seconds)],
                env=env, capture_output=True, text=True, check=True,
            ).stdout
            rates[policy].append(float(out.strip().splitlines()[-1]))
    return {k: statistics.median(v) for k, v in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum seconds per timing")
    parser.add_argument("--repeats", type=int, default=3, help="timings per row; the median is reported")
    parser.add_argument("--devices", default="auto", help="comma-separated: cpu,cuda (auto: cpu and cuda if present)")
    parser.add_argument("--quick", action="store_true", help="skip the width-32 ResNet18/VGG11 rows")
    parser.add_argument("--skip-table", action="store_true", help="only the ConvNet variant comparison")
    parser.add_argument("--skip-variants", action="store_true", help="only the table")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)  # ConvNet width; prints clips/s
    args = parser.parse_args()
    if args.worker is not None:
        print(median_rates([Bench(Case("convnet", args.worker, SHAPE_20MS), torch.device("cpu"), args.batch_size)],
                           args.seconds, 1)[0])
        return

    names = ["cpu", "cuda"] if args.devices == "auto" else args.devices.split(",")
    devices = []
    for name in names:
        if name.startswith("cuda") and not torch.cuda.is_available():
            print(f"{name}: CUDA not available on this machine, skipped")
            continue
        devices.append(torch.device(name))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, batch {args.batch_size}, "
          f"median of {args.repeats} timings of >= {args.seconds:g} s")
    header = f"{'case':<44} {'clips/s':>9} {'s/FSDD epoch':>13}"
    for device in devices:
        what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
        print(f"\n{device}: {what}")
        if not args.skip_table:
            print(header)
            for case in table_cases(args.quick):
                rate = median_rates([Bench(case, device, args.batch_size)], args.seconds, args.repeats)[0]
                print(f"{case.label:<44} {rate:>9.0f} {FSDD_TRAIN_CLIPS / rate:>13.2f}", flush=True)
        for width in () if args.skip_variants else (128, 64):
            variants = variant_cases(width, device)
            rates = median_rates([Bench(c, device, args.batch_size) for c in variants], args.seconds, args.repeats)
            print(f"\n{device}: ConvNet w{width} variants, interleaved rounds (speed relative to the default)")
            print(header)
            for case, rate in zip(variants, rates):
                print(f"{case.label:<44} {rate:>9.0f} {FSDD_TRAIN_CLIPS / rate:>13.2f}  x{rate / rates[0]:.2f}",
                      flush=True)
            if device.type == "cpu":
                policies = omp_policy_rates(width, args.seconds, args.repeats)
                for policy, rate in policies.items():
                    label = f"convnet w{width} 20x51 (OMP_WAIT_POLICY {policy})"
                    print(f"{label:<44} {rate:>9.0f} {FSDD_TRAIN_CLIPS / rate:>13.2f}  "
                          f"x{rate / policies['default']:.2f} of its own default", flush=True)


if __name__ == "__main__":
    main()
