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
    python scripts/bench_fidelity.py --distilled runs/distill/fsdd-mtt-cpc10-...  # also: a distilled set's audio

With ``--distilled DIR`` (a run folder with ``DIR/audio`` written by ``ddfad-apps reconstruct``) the whole-data
network of the features' own framing (Hann, ``FeatureConfig``'s hop) also classifies the set's reconstructed
clips: does each still sound like its class to a good classifier?

Each framing is a ``FeatureConfig`` (``window``, ``hop_ms``); the round trip is run for every synthesis overlap
in ``--overlaps`` (Griffin-Lim frames per analysis hop: 1 synthesises on the features' own grid, 4 - the
default of ``fd_mfcc_to_audio`` - on a 75 %-overlapped grid).
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
    parser.add_argument("--framings", default=",".join(f"{w}:{h:g}" for w, h in FRAMINGS),
                        help="comma-separated window:hop_ms pairs (default: all four)")
    parser.add_argument("--overlaps", default="1,4", help="synthesis frames per analysis hop to compare")
    parser.add_argument("--distilled", type=Path, default=None, help="run folder whose audio/ export to classify")
    return parser.parse_args()


def distilled_accuracy(folder: Path, model, stats, config, classes, sample_rate, audio_accuracy, list_clips):
    """Accuracy of the whole-data ``model`` on the WAVs in ``folder/audio``, and how many there are."""
    audio = folder / "audio"
    if not (audio / "manifest.json").exists():
        raise SystemExit(f"{audio}/manifest.json not found: run `ddfad-apps reconstruct {folder}` first")
    clips = list_clips(str(audio), "all", None)
    if clips.sample_rate != sample_rate:
        raise SystemExit(f"{audio} is at {clips.sample_rate} Hz, FSDD at {sample_rate} Hz")
    loaded = clips.load(progress=False)
    labels = torch.tensor([classes.index(clips.classes[y]) for y in loaded.labels.tolist()])
    return audio_accuracy(model, loaded.waveforms, labels, sample_rate, stats, config), len(labels)


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
        audio_accuracy, frame_rate_line, log_spectral_distance, peak_stats, roundtrip_accuracy,
        spectral_convergence_to,
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
    overlaps = [int(o) for o in args.overlaps.split(",")]

    try:
        framings = [(w.strip(), float(h)) for w, h in (f.split(":") for f in args.framings.split(","))]
    except ValueError as exc:
        raise SystemExit(f"--framings {args.framings!r}: expected window:hop_ms pairs such as hann:20 ({exc})")
    rows, distilled = [], None
    for window, hop_ms in framings:
        config = base.replace(hop_ms=hop_ms, window=window)
        feats = {s: config.extract(w, sr) for s, w in waves.items()}
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
        for overlap in overlaps:
            rt = roundtrip_accuracy(model, real, labels["test"][test_idx], sr, stats, config, n_iter=args.n_iter,
                                    seed=args.seed, overlap=overlap)
            recon = rt.reconstructed
            real_peak, recon_peak = peak_stats(real).peak, peak_stats(recon).peak
            line = frame_rate_line(recon, sr, 1000.0 / hop_ms) - frame_rate_line(real, sr, 1000.0 / hop_ms)
            rows.append({
                "framing": f"{window} {hop_ms:g} ms", "overlap": overlap, "frames": train.input_shape[-1],
                "s/epoch": per_epoch, "test acc": 100 * test_acc, "orig acc": 100 * rt.original_accuracy,
                "rt acc": 100 * rt.roundtrip_accuracy,
                "SC": float(spectral_convergence_to(real, recon, sr).median()),
                "LSD dB": float(log_spectral_distance(real, recon, sr).median()),
                "peak ratio": float((recon_peak / real_peak.clamp_min(1e-9)).median()),
                "max peak": float(recon_peak.max()), "clips >FS": int((recon_peak > 1.0).sum()),
                "buzz dB": float(line.median()),
            })
            print(rows[-1], flush=True)
        if args.distilled is not None and window == "hann" and hop_ms == base.hop_ms:
            distilled = distilled_accuracy(args.distilled, model, stats, config, splits["train"].classes, sr,
                                           audio_accuracy, list_clips)

    print(f"\nFSDD, ConvNet width {args.width}, {args.epochs} epochs (whole training split), round trip of "
          f"{len(test_idx)} test clips, Griffin-Lim {args.n_iter} it.; SC/LSD/peak ratio/buzz: medians\n")
    if args.distilled is not None and distilled is None:
        raise SystemExit(f"--distilled needs the features' own framing (hann:{base.hop_ms:g}) in --framings")
    if args.distilled is not None:
        print(f"distilled set {args.distilled}: {distilled[1]} reconstructed clips, whole-data ConvNet (hann "
              f"{base.hop_ms:g} ms) accuracy {100 * distilled[0]:.2f}%\n")
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) and k in ("SC",) else
                                f"{v:.2f}" if isinstance(v, float) else str(v) for k, v in r.items()) + " |")


if __name__ == "__main__":
    main()
