"""How faithful FD-MFCC -> audio is, per framing: does a reconstructed real clip still sound like its class?

For each framing (window Hann / Hamming x hop 20 / 10 ms, 20 ms frames), on the real FSDD split:

1. FD-MFCC of all clips with that framing, normalised with training statistics;
2. a whole-data ConvNet (width 32, a few epochs) trained on them: seconds per epoch, test accuracy;
3. the round trip of the test clips (FD-MFCC -> fast Griffin-Lim with the same window -> FD-MFCC), classified
   by that network, against its accuracy on the originals (``roundtrip_accuracy``);
4. against the original clips: spectral convergence and log-spectral distance (one fixed 32 ms / 8 ms STFT for
   all framings), the raw reconstruction's peak relative to the original's, how many raw reconstructions would
   clip, and the frame-rate line (the buzz at 1 / hop) of reconstruction minus original.

    python scripts/bench_fidelity.py                        # about 5-10 min on 2 shared cores
    python scripts/bench_fidelity.py --epochs 4 --n-test 100  # quicker

The Hamming features are the FD-MFCC chain with only the window changed (checked against ``FeatureConfig``'s own
extractor with Hann at start-up); the feature defaults are not changed by this script.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
FRAMINGS = (("hann", 20.0), ("hamming", 20.0), ("hann", 10.0), ("hamming", 10.0))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default=os.environ.get("DDFAD_DATA") or str(REPO.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--n-test", type=int, default=300, help="test clips in the round trip (all 300 by default)")
    parser.add_argument("--n-iter", type=int, default=32, help="Griffin-Lim iterations (the export's default)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def extractor(config, window: str):
    """FD-MFCC with ``window`` in place of the config's periodic Hann: the same chain, step by step."""
    from ddfad_apps.features import functional as AF
    from ddfad_apps.reconstruct.functional import analysis_window

    def extract(waves: torch.Tensor, sample_rate: int) -> torch.Tensor:
        win, hop, n_fft = AF.frame_params(sample_rate, config.frame_ms, config.hop_ms)
        x = AF.pre_emphasis(waves, config.pre_emphasis)
        spec = torch.stft(x, n_fft, hop, win, analysis_window(window, win, x.dtype, x.device), center=True,
                          pad_mode="constant", return_complex=True)
        fb = AF.mel_filterbank(sample_rate, n_fft, config.n_mels, device=x.device, dtype=x.dtype)
        db = AF.power_to_db(torch.matmul(fb, spec.abs().square()), top_db=config.top_db)
        mfcc = torch.matmul(AF.dct_matrix(config.n_coeffs, config.n_mels, x.device, x.dtype), db)
        return torch.stack([mfcc, AF.delta(mfcc, 1, config.delta_width), AF.delta(mfcc, 2, config.delta_width)], -3)

    return extract


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    from ddfad_apps.data.audio_io import read_many
    from ddfad_apps.data.registry import list_clips
    from ddfad_apps.features.config import FeatureConfig
    from ddfad_apps.features.dataset import FeatureSet
    from ddfad_apps.features.normalize import FeatureStats
    from ddfad_apps.models import build_model
    from ddfad_apps.reconstruct.fidelity import (
        frame_rate_line, log_spectral_distance, peak_stats, roundtrip_accuracy, spectral_convergence_to,
    )
    from ddfad_apps.training.loops import TrainConfig, accuracy, train_model

    root = Path(args.data_root)
    splits = {s: list_clips("fsdd", s, data_root=root) for s in ("train", "test")}
    sr = splits["train"].sample_rate
    t0 = time.perf_counter()
    waves = {s: read_many(c.paths, sr, c.num_samples, progress=False) for s, c in splits.items()}
    labels = {s: torch.tensor([c.labels[i] for i in waves[s][1]]) for s, c in splits.items()}
    waves = {s: w for s, (w, _) in waves.items()}
    print(f"read {len(waves['train'])} + {len(waves['test'])} FSDD clips in {time.perf_counter() - t0:.1f} s")
    step = max(1, len(waves["test"]) // args.n_test)
    test_idx = torch.arange(0, len(waves["test"]), step)[: args.n_test]

    base = FeatureConfig()
    ours, check = base.extract(waves["test"][:8], sr), extractor(base, "hann")(waves["test"][:8], sr)
    assert torch.allclose(ours, check, atol=1e-3, rtol=1e-4), "the windowed extractor no longer matches the features"

    rows = []
    for window, hop_ms in FRAMINGS:
        config = base.replace(hop_ms=hop_ms)
        extract = config.extract if window == "hann" else extractor(config, window)
        feats = {s: extract(w, sr) for s, w in waves.items()}
        stats = FeatureStats.fit(feats["train"])
        train = FeatureSet(stats.apply(feats["train"]), labels["train"], splits["train"].classes)
        test = FeatureSet(stats.apply(feats["test"]), labels["test"], splits["train"].classes)
        torch.manual_seed(args.seed)
        model = build_model("convnet", 10, train.input_shape, width=args.width)
        t0 = time.perf_counter()
        train_model(model, train, TrainConfig(epochs=args.epochs), progress=False,
                    generator=torch.Generator().manual_seed(args.seed))
        per_epoch = (time.perf_counter() - t0) / args.epochs
        test_acc = accuracy(model, test)

        real = waves["test"][test_idx]
        rt = roundtrip_accuracy(model, real, labels["test"][test_idx], sr, stats, config, extract=extract,
                                window=window, n_iter=args.n_iter, seed=args.seed)
        recon = rt.reconstructed
        real_peak, recon_peak = peak_stats(real).peak, peak_stats(recon).peak
        line = frame_rate_line(recon, sr, 1000.0 / hop_ms) - frame_rate_line(real, sr, 1000.0 / hop_ms)
        rows.append({
            "framing": f"{window} {hop_ms:g} ms", "frames": train.input_shape[-1], "s/epoch": per_epoch,
            "test acc": 100 * test_acc, "orig acc": 100 * rt.original_accuracy, "rt acc": 100 * rt.roundtrip_accuracy,
            "SC": float(spectral_convergence_to(real, recon, sr).median()),
            "LSD dB": float(log_spectral_distance(real, recon, sr).median()),
            "peak ratio": float((recon_peak / real_peak.clamp_min(1e-9)).median()),
            "max peak": float(recon_peak.max()), "clips >FS": int((recon_peak > 1.0).sum()),
            "buzz dB": float(line.median()),
        })
        print(rows[-1], flush=True)

    print(f"\nFSDD, ConvNet width {args.width}, {args.epochs} epochs (whole training split), round trip of "
          f"{len(test_idx)} test clips, Griffin-Lim {args.n_iter} it.; SC/LSD/peak ratio/buzz: medians\n")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) and k in ("SC",) else
                                f"{v:.2f}" if isinstance(v, float) else str(v) for k, v in r.items()) + " |")


if __name__ == "__main__":
    main()
