"""The paper's Figure 6: per class, an original clip and a distilled clip, each as waveform and spectrogram.

Drawn on an Agg canvas owned by the figure (no pyplot), so it works headless and leaves the caller's matplotlib
state alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

ROWS = ("Original\nwaveform", "Original\nspectrogram", "Distilled\nwaveform", "Distilled\nspectrogram")
DB_RANGE = 80.0


def _as_tensor(x) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().float()
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def _first_of_each(waves: torch.Tensor, labels: torch.Tensor, n_classes: int) -> list[torch.Tensor | None]:
    out: list[torch.Tensor | None] = []
    for c in range(n_classes):
        hits = (labels == c).nonzero().flatten()
        out.append(waves[int(hits[0])] if len(hits) else None)
    return out


def _spectrogram_db(wave: torch.Tensor, n_fft: int) -> torch.Tensor:
    """Magnitude STFT in dB relative to the clip's peak, floored ``DB_RANGE`` below it (each clip's own scale)."""
    window = torch.hann_window(n_fft, periodic=True)
    spec = torch.stft(wave, n_fft, n_fft // 4, window=window, center=True, pad_mode="constant", return_complex=True)
    db = 20.0 * torch.log10(spec.abs().clamp_min(1e-10))
    return (db - db.max()).clamp_min(-DB_RANGE)


def plot_original_vs_distilled(
    real_waves, real_labels, synth_waves, synth_labels, classes: Sequence[str], sample_rate: int,
    path: str | Path, max_classes: int | None = 10, dpi: int = 120,
) -> Path:
    """One column per class (the first clip of each), rows: original waveform and dB spectrogram, distilled
    waveform and dB spectrogram.  Waveforms are peak-normalised: the distilled clips' absolute level is arbitrary.
    Writes a PNG and returns its path."""
    real_waves, synth_waves = _as_tensor(real_waves), _as_tensor(synth_waves)
    real_labels, synth_labels = _as_tensor(real_labels).long(), _as_tensor(synth_labels).long()
    classes = list(classes)[: max_classes or None]
    n = len(classes)
    if n == 0:
        raise ValueError("no classes to plot")
    n_fft = 1 << (int(0.032 * sample_rate) - 1).bit_length()  # ~32 ms: resolves speech harmonics at any rate
    columns = [_first_of_each(real_waves, real_labels, n), _first_of_each(synth_waves, synth_labels, n)]

    fig = Figure(figsize=(1.9 * n + 1.6, 7.2), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, n, squeeze=False, sharex=True)
    image = None
    for c, name in enumerate(classes):
        for kind, clips in enumerate(columns):
            wave = clips[c]
            ax_wave, ax_spec = axes[2 * kind, c], axes[2 * kind + 1, c]
            if wave is None:
                for ax in (ax_wave, ax_spec):
                    ax.text(0.5, 0.5, "no clip", ha="center", va="center", transform=ax.transAxes, color="grey")
                continue
            duration = wave.shape[-1] / sample_rate
            t = np.arange(wave.shape[-1]) / sample_rate
            ax_wave.plot(t, (wave / wave.abs().max().clamp_min(1e-12)).numpy(), lw=0.4,
                         color="tab:blue" if kind == 0 else "tab:orange")
            ax_wave.set_ylim(-1.05, 1.05)
            ax_wave.set_xlim(0, duration)
            image = ax_spec.imshow(
                _spectrogram_db(wave, n_fft).numpy(), origin="lower", aspect="auto", cmap="magma",
                extent=(0, duration, 0, sample_rate / 2000), vmin=-DB_RANGE, vmax=0,
            )
        axes[0, c].set_title(str(name), fontsize=10)
    for r, label in enumerate(ROWS):
        for c in range(n):
            ax = axes[r, c]
            ax.tick_params(labelsize=7)
            if c > 0:
                ax.set_yticklabels([])
        unit = "kHz" if r % 2 else "amplitude"
        axes[r, 0].set_ylabel(f"{label}\n({unit})", fontsize=8)
    for c in range(n):
        axes[-1, c].set_xlabel("time (s)", fontsize=8)
    if image is not None:
        fig.colorbar(image, ax=axes[:, -1].tolist(), label="dB re clip peak", shrink=0.6)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path
