"""Probe: does a speaker-like augmentation make networks trained on a few speakers generalise to unseen ones?

    python scripts/probe_speaker_augment.py --dataset /path/to/fsdd_speakers --augment none,warp,eq --seeds 0,1,2

Trains expert-like ConvNets (the fast preset's small-data experts: width 32, 25 epochs, batch 32, lr 0.01, the
time-shift and mask augmentation) on the carved fit part of a grouped folder data set, each with one extra
augmentation of its FD-MFCC inputs, and prints accuracy on the validation speaker (carved whole from the training
speakers) and on the test speakers.  It asks whether the experts MTT matches could be made to see speaker variation
before any set is distilled with them (docs/evidence/fsdd_speakers_augment_probe.txt).  The extra augmentations:

- ``warp``: a VTLP-like warp of the mel axis by a factor drawn from [0.9, 1.1] per clip, applied to the cepstra as
  ``DCT . W . DCT^T`` (linear, so the deltas follow);
- ``eq``: a random constant offset of the static cepstra (a channel or timbre change), ``--eq`` times the spread of
  the clips' own cepstral means per coefficient.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

AUGMENTS = ("none", "warp", "eq")


def mel_warp_matrices(alpha: torch.Tensor, n_mfcc: int, n_mels: int) -> torch.Tensor:
    """``(n, n_mfcc, n_mfcc)``: cepstra -> log-mel (DCT^T) -> mel axis stretched by ``alpha`` -> cepstra."""
    from ddfad_apps.features.functional import dct_matrix

    dct = dct_matrix(n_mfcc, n_mels, dtype=torch.float64)
    src = (torch.arange(n_mels, dtype=torch.float64).unsqueeze(0) / alpha.double().unsqueeze(1)).clamp(0, n_mels - 1)
    i0 = src.floor().long()
    i1, frac = (i0 + 1).clamp(max=n_mels - 1), src - i0
    warp = torch.zeros(alpha.shape[0], n_mels, n_mels, dtype=torch.float64)
    warp.scatter_add_(2, i0.unsqueeze(2), (1 - frac).unsqueeze(2))
    warp.scatter_add_(2, i1.unsqueeze(2), frac.unsqueeze(2))
    return (dct @ warp @ dct.T).float()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True, help="a grouped folder data set (manifest group_pattern)")
    ap.add_argument("--augment", default="none,warp,eq", help=f"comma list of {AUGMENTS}")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--eq", type=float, default=0.5, help="eq offset, in spreads of the clips' cepstral means")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from ddfad_apps.distill.augment import AudioAugment
    from ddfad_apps.evidence.protocol import EvalProtocol
    from ddfad_apps.features.dataset import load_features
    from ddfad_apps.models.registry import build_model
    from ddfad_apps.training.loops import TrainConfig, accuracy, train_model

    splits = load_features(args.dataset, progress=False)
    carved = EvalProtocol().carve(splits.train)
    stats, n_mfcc = splits.stats, splits.config.n_coeffs
    cepstral_mean_spread = stats.invert(carved.fit.features)[:, 0].mean(-1).std(0).view(n_mfcc, 1)
    base = AudioAugment()

    def augment(kind: str, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        x = base(x, generator=g)
        if kind == "none":
            return x
        raw = stats.invert(x)
        if kind == "warp":
            alpha = torch.empty(x.shape[0]).uniform_(0.9, 1.1, generator=g)
            raw = torch.einsum("nij,ncjt->ncit", mel_warp_matrices(alpha, n_mfcc, splits.config.n_mels), raw)
        else:  # eq
            offset = torch.randn(x.shape[0], n_mfcc, 1, generator=g) * args.eq * cepstral_mean_spread
            raw = torch.cat([raw[:, :1] + offset.unsqueeze(1), raw[:, 1:]], dim=1)
        return stats.apply(raw)

    for kind in args.augment.split(","):
        if kind not in AUGMENTS:
            raise SystemExit(f"unknown augmentation {kind!r}; choose from {AUGMENTS}")
        for seed in (int(s) for s in args.seeds.split(",")):
            torch.manual_seed(seed)
            g = torch.Generator().manual_seed(seed)
            model = build_model("convnet", len(splits.classes), tuple(splits.train.features.shape[1:]), width=32)
            t0 = time.perf_counter()
            train_model(model, carved.fit, TrainConfig(epochs=25, lr=0.01, batch_size=32),
                        augment=lambda x, kind=kind, g=g: augment(kind, x, g), generator=g, progress=False)
            print(f"{kind} seed {seed}: validation speaker {100 * accuracy(model, carved.val):.2f} %, test speakers "
                  f"{100 * accuracy(model, splits.test):.2f} % ({time.perf_counter() - t0:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
