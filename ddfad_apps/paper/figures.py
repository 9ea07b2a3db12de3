"""Fig. 5 (features inside distillation) and Fig. 7 (waveform noise), drawn from the saved records.

Agg canvases owned by each figure (no pyplot), as in :mod:`ddfad_apps.reconstruct.figures`; error bars are the
95% intervals over set seeds (none with one set seed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ddfad_apps.evidence.stats import Summary, summarize
from ddfad_apps.paper.tables import summary_of


def _errors(s: Summary) -> tuple[float, float]:
    if not math.isfinite(s.half_width):
        return 0.0, 0.0
    return 100 * (s.mean - s.low), 100 * (s.high - s.mean)


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def fig5(data: dict[str, dict[int, dict[str, Any]]], title: str, path: Path) -> Path:
    """Grouped bars: one group per CPC, one bar per feature kind (accuracy %, 95% CI)."""
    fig = Figure(figsize=(6.4, 4.0), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    features = list(data)
    cpcs = sorted({c for per in data.values() for c in per})
    width = 0.8 / max(1, len(features))
    for i, feature in enumerate(features):
        xs, ys, errs = [], [], ([], [])
        for j, c in enumerate(cpcs):
            if c not in data[feature]:
                continue
            s = summary_of(data[feature][c])
            lo, hi = _errors(s)
            xs.append(j + (i - (len(features) - 1) / 2) * width)
            ys.append(100 * s.mean)
            errs[0].append(lo)
            errs[1].append(hi)
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=feature)
    ax.set_xticks(range(len(cpcs)), [f"CPC {c}" for c in cpcs])
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    ax.legend()
    return _save(fig, path)


def fig7(levels: list[dict[str, Any]], title: str, path: Path) -> Path:
    """Accuracy against the noise standard deviation (symlog axis, 0 = clean reconstruction), 95% CI bars."""
    fig = Figure(figsize=(6.4, 4.0), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    levels = sorted(levels, key=lambda lv: lv["std"])
    stds = [lv["std"] for lv in levels]
    sums = [summarize(list(lv["per_set_seed"].values())) for lv in levels]
    lo_hi = [_errors(s) for s in sums]
    ax.errorbar(stds, [100 * s.mean for s in sums], yerr=([e[0] for e in lo_hi], [e[1] for e in lo_hi]),
                marker="o", capsize=3)
    positive = [s for s in stds if s > 0]
    ax.set_xscale("symlog", linthresh=min(positive) if positive else 1e-3)
    for lv, s in zip(levels, sums):
        snrs = [v for v in lv["snr_db"].values() if v is not None]
        if snrs:
            ax.annotate(f"{round(sum(snrs) / len(snrs))} dB", (lv["std"], 100 * s.mean), textcoords="offset points",
                        xytext=(0, 8), ha="center", fontsize=8)
    ax.set_xlabel("noise std on the waveform (full scale); labels: SNR")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title, fontsize=10)
    return _save(fig, path)
