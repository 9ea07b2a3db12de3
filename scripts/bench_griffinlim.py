"""Time our batched FD-MFCC -> audio against a per-clip loop of librosa's ``mfcc_to_audio`` on the same MFCC.

Both invert the same static MFCC (our FD-MFCC's channel 0) with the same mel bands, FFT size, window, hop and
Griffin-Lim iterations (momentum 0.99, random initial phase), on the same synthesis grid: ours with
``overlap=1`` (``--overlap``; the export's default of 4 synthesis frames per hop does 4x the frames).  Also reports how well each converged:
spectral convergence ``||S - |STFT(y)||| / ||S||`` against its own target magnitude, and how close the MFCC of the
reconstruction is to the MFCC it was made from.

    python scripts/bench_griffinlim.py --n-clips 100 --n-iter 32

``--threads`` defaults to 1: librosa's path (pocketfft, scipy's L-BFGS-B) runs on one core, so this compares per
core; on a busy shared machine, two OpenMP threads also make every small torch op wait for a second core.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-clips", type=int, default=100)
    parser.add_argument("--n-iter", type=int, default=32)
    parser.add_argument("--data-root", default=os.environ.get("DDFAD_DATA") or str(REPO.parent / "shared" / "data"))
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: per-core comparison)")
    parser.add_argument("--device", default="cpu", help="device for our implementation (librosa is CPU only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overlap", type=int, default=1,
                        help="our synthesis frames per feature hop (1: librosa's grid, like for like)")
    return parser.parse_args()


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


def mfcc_fidelity(mfcc_in: torch.Tensor, mfcc_out: torch.Tensor) -> tuple[float, float]:
    """RMSE (MFCC units) and mean per-clip Pearson without c0 (c0, the loudness, alone correlates trivially)."""
    rmse = float((mfcc_in - mfcc_out).square().mean().sqrt())
    corr = float(np.mean([pearson(mfcc_in[i, 1:], mfcc_out[i, 1:]) for i in range(len(mfcc_in))]))
    return rmse, corr


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    import librosa

    from ddfad_apps.data.audio_io import read_many
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.features import functional as AF
    from ddfad_apps.features.config import FeatureConfig
    from ddfad_apps.reconstruct import functional as R

    config = FeatureConfig()
    listing = list_clips("fsdd", "train", data_root=args.data_root)
    sr = listing.sample_rate
    picks = np.linspace(0, len(listing) - 1, args.n_clips).round().astype(int)  # spread over digits and speakers
    waves, _ = read_many([listing.paths[i] for i in picks], sr, listing.num_samples, progress=False)
    length = waves.shape[-1]
    win, hop, n_fft = AF.frame_params(sr, config.frame_ms, config.hop_ms)
    features = config.extract(waves, sr)
    mfcc = features[:, 0]
    device = torch.device(args.device)
    print(f"{len(waves)} FSDD clips of {length / sr:.1f} s at {sr} Hz; n_fft={n_fft} win={win} hop={hop} "
          f"n_mels={config.n_mels} n_mfcc={config.n_coeffs}; n_iter={args.n_iter}, momentum 0.99; "
          f"torch threads={torch.get_num_threads()}, device={device}")

    def ours(regularization: float) -> tuple[torch.Tensor, float]:
        gen = torch.Generator(device=device).manual_seed(args.seed)
        feats = features.to(device)
        R.fd_mfcc_to_audio(feats[:2], sr, config, args.n_iter, generator=gen, regularization=regularization,
                           overlap=args.overlap)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = R.fd_mfcc_to_audio(feats, sr, config, args.n_iter, generator=gen, length=length,
                                 regularization=regularization, overlap=args.overlap)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out.cpu(), time.perf_counter() - start

    y_ours, t_ours = ours(1e-2)
    y_ours0, t_ours0 = ours(0.0)

    kwargs = dict(n_mels=config.n_mels, sr=sr, n_fft=n_fft, hop_length=hop, win_length=win, n_iter=args.n_iter,
                  length=length)
    mfcc_np = mfcc.numpy()
    librosa.feature.inverse.mfcc_to_audio(mfcc_np[0], **kwargs)  # warm-up (imports, caches)
    start = time.perf_counter()
    y_lib = np.stack([librosa.feature.inverse.mfcc_to_audio(m, **kwargs) for m in mfcc_np])
    t_lib = time.perf_counter() - start
    y_lib = torch.from_numpy(y_lib)

    # convergence, outside the timed regions: each against its own target magnitude
    mel = R.db_to_power(R.mfcc_to_mel_db(mfcc, config.n_mels))
    target_ours = R.mel_to_stft_magnitude(mel, sr, n_fft)
    target_lib = torch.from_numpy(np.stack(
        [librosa.feature.inverse.mel_to_stft(m, sr=sr, n_fft=n_fft) for m in mel.numpy()]
    ))
    sc_ours = R.spectral_convergence(target_ours, AF.pre_emphasis(y_ours, config.pre_emphasis), n_fft, hop, win)
    sc_ours0 = R.spectral_convergence(target_ours, AF.pre_emphasis(y_ours0, config.pre_emphasis), n_fft, hop, win)
    sc_lib = R.spectral_convergence(target_lib, y_lib, n_fft, hop, win)
    # librosa's output is in the pre-emphasised domain (it knows no de-emphasis): take its MFCC directly
    fid_ours = mfcc_fidelity(mfcc, config.extract(y_ours, sr)[:, 0])
    fid_ours0 = mfcc_fidelity(mfcc, config.extract(y_ours0, sr)[:, 0])
    fid_lib = mfcc_fidelity(mfcc, AF.mfcc(y_lib, sr, config.n_coeffs, n_fft, hop, win, config.n_mels))
    emphasised = AF.pre_emphasis(waves, config.pre_emphasis)

    def peak(y: torch.Tensor, reference: torch.Tensor) -> float:
        return float((y.abs().amax(-1) / reference.abs().amax(-1)).median())

    n = len(waves)
    print(f"\n{'':34s}{'total s':>9s}{'ms/clip':>9s}{'SC mean':>9s}{'SC med':>8s}{'MFCC rmse':>10s}"
          f"{'r(c1+)':>8s}{'peak/orig':>10s}")
    rows = [
        ("ours (batched, regularised 1e-2)", t_ours, sc_ours, fid_ours, peak(y_ours, waves)),
        ("ours (batched, plain LS synthesis)", t_ours0, sc_ours0, fid_ours0, peak(y_ours0, waves)),
        ("librosa mfcc_to_audio (per clip)", t_lib, sc_lib, fid_lib, peak(y_lib, emphasised)),
    ]
    for name, t, sc, (rmse, corr), level in rows:
        print(f"{name:34s}{t:9.2f}{1000 * t / n:9.1f}{float(sc.mean()):9.4f}{float(sc.median()):8.4f}"
              f"{rmse:10.2f}{corr:8.4f}{level:10.2f}")
    print(f"\nspeed-up per clip: {t_lib / t_ours:.1f}x (regularised), {t_lib / t_ours0:.1f}x (plain LS)")
    print("(ours includes the de-emphasis filter; peak/orig: median peak of the reconstruction over the original's,"
          " pre-emphasised for librosa, whose output stays in that domain)")


if __name__ == "__main__":
    main()
