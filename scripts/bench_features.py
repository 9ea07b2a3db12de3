"""FD-MFCC extraction speed and agreement: our batched torch code against a per-clip librosa loop.

Why: feature extraction runs for every data set, every feature setting and (inside distillation) on every
step, so its speed matters, and the README claims it is both much faster than and equal to librosa.

All 3,000 FSDD clips are decoded into memory once (that I/O time is printed separately), then the same
float32 waveforms go to

* ours: ``FeatureConfig().extract`` in batches (20 ms hop, and again with a 10 ms hop), median of repeats;
* librosa: per clip ``librosa.feature.mfcc`` plus two ``librosa.feature.delta``, with identical parameters
  (same n_fft, hop, win_length, periodic Hann, centred zero-padded frames, n_mels=40, top_db=80, deltas of
  width 9, the same pre-emphasised input), timed once after a short warm-up;

and the script prints both times, the speed ratio (target >= 20x) and the largest absolute difference.

    python scripts/bench_features.py [--data-root DIR] [--threads N]

On a shared machine use ``--threads 1`` or ``OMP_WAIT_POLICY=PASSIVE``: spinning OpenMP workers competing with
other processes can make our side 2x slower (see scripts/bench_train.py); librosa's loop is single-threaded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import librosa
import numpy as np
import torch

from ddfad_apps.data import list_clips
from ddfad_apps.features import FeatureConfig
from ddfad_apps.features import functional as AF

REPO = Path(__file__).resolve().parents[1]


def default_data_root() -> Path:
    return Path(os.environ["DDFAD_DATA"]) if os.environ.get("DDFAD_DATA") else REPO.parent / "shared" / "data"


def ours(waves: torch.Tensor, sr: int, config: FeatureConfig, batch_size: int) -> torch.Tensor:
    return torch.cat([config.extract(waves[i : i + batch_size], sr) for i in range(0, len(waves), batch_size)])


def librosa_loop(waves: np.ndarray, sr: int, config: FeatureConfig) -> np.ndarray:
    """The straightforward reference: one clip at a time, as most audio code does it."""
    win, hop, n_fft = AF.frame_params(sr, config.frame_ms, config.hop_ms)
    if config.top_db != 80.0:  # librosa.feature.mfcc(y=...) always floors at its power_to_db default
        raise ValueError("the librosa reference uses power_to_db's fixed top_db=80")
    out = []
    for x in waves:
        y = np.concatenate([x[:1], x[1:] - config.pre_emphasis * x[:-1]])
        m = librosa.feature.mfcc(
            y=y, sr=sr, n_mfcc=config.n_coeffs, n_fft=n_fft, hop_length=hop, win_length=win, window="hann",
            center=True, pad_mode="constant", n_mels=config.n_mels,
        )
        d1 = librosa.feature.delta(m, width=config.delta_width, order=1)
        d2 = librosa.feature.delta(m, width=config.delta_width, order=2)
        out.append(np.stack([m, d1, d2]))
    return np.stack(out)


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    """Median wall time of ``repeats`` calls and the last result."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", type=Path, default=default_data_root(),
                        help="folder holding fsdd/ (default: $DDFAD_DATA, else <repo>/../shared/data)")
    parser.add_argument("--batch-size", type=int, default=512, help="clips per torch call (as the feature loader)")
    parser.add_argument("--repeats", type=int, default=5, help="timings of our extractor; the median is shown")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips (quick check)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads for ours (default: torch's choice, one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    clips = list_clips("fsdd", "all", args.data_root)
    if args.limit:
        clips.paths, clips.labels = clips.paths[: args.limit], clips.labels[: args.limit]
    io_s, wave_set = timed(lambda: clips.load(progress=False))
    waves, sr = wave_set.waveforms.contiguous(), clips.sample_rate
    n = len(waves)
    print(f"FSDD: {n} clips x {waves.shape[1]} samples at {sr} Hz; torch {torch.__version__} with "
          f"{torch.get_num_threads()} threads, librosa {librosa.__version__}")
    print(f"decode + resample + pad (I/O, excluded below): {io_s:.2f} s")

    waves_np = waves.numpy()
    rows = []
    for hop_ms in (20.0, 10.0):
        config = FeatureConfig(hop_ms=hop_ms)
        ours(waves[:8], sr, config, args.batch_size)  # warm-up: filter bank and DCT caches, allocator
        t_ours, feats = timed(lambda: ours(waves, sr, config, args.batch_size), args.repeats)
        librosa_loop(waves_np[:20], sr, config)  # warm-up: librosa's lazy imports and caches
        t_ref, ref = timed(lambda: librosa_loop(waves_np, sr, config))
        diff = np.abs(feats.numpy() - ref)
        per_channel = diff.reshape(n, 3, -1).max(axis=(0, 2))
        scale = np.abs(ref).reshape(n, 3, -1).max(axis=(0, 2))
        rows.append((hop_ms, tuple(feats.shape[1:]), t_ours, t_ref, diff.max(), per_channel, scale))

    print(f"\n{'hop':>5} {'shape':>12} {'ours s':>8} {'clips/s':>9} {'librosa s':>10} {'clips/s':>8} {'ratio':>7} "
          f"{'max|diff|':>10}")
    for hop_ms, shape, t_ours, t_ref, max_diff, _, _ in rows:
        print(f"{hop_ms:>3.0f}ms {str(shape):>12} {t_ours:>8.3f} {n / t_ours:>9.0f} {t_ref:>10.2f} {n / t_ref:>8.0f} "
              f"{t_ref / t_ours:>6.1f}x {max_diff:>10.2e}")
    for hop_ms, _, _, _, _, per_channel, scale in rows:
        parts = ", ".join(f"{name} {d:.2e} (|max| {s:.1f})" for name, d, s in zip(("mfcc", "delta", "delta2"), per_channel, scale))
        print(f"{hop_ms:.0f} ms max|diff| per channel: {parts}")
    print(f"\nincluding I/O (decode once + extract) at 20 ms: ours {io_s + rows[0][2]:.2f} s, "
          f"librosa {io_s + rows[0][3]:.2f} s")


if __name__ == "__main__":
    main()
