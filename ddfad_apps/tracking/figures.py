"""The standard figures logged with runs: a confusion matrix and training curves.

Figures are built as bare ``matplotlib.figure.Figure`` objects on an Agg canvas, not through pyplot: no GUI
backend is ever selected (commands run on headless machines), and no global figure registry keeps them alive,
so logging hundreds of NAS trials does not leak memory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def confusion_matrix_figure(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, classes: Sequence[str],
    title: str = "Confusion matrix",
) -> Figure:
    """Counts of (true, predicted) class pairs, each cell annotated; rows are true classes.

    Cell colour is the row-normalised share, so a rare class's errors are as visible as a common class's,
    while the annotation shows the raw count.  The title carries the overall accuracy.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.int64).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.shape[0]} vs {y_pred.shape[0]}")
    n = len(classes)
    counts = np.zeros((n, n), dtype=np.int64)
    np.add.at(counts, (y_true, y_pred), 1)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape, dtype=float), where=rows > 0)

    size = max(4.0, 0.55 * n + 2.0)
    fig = _new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of true class")
    long_labels = max((len(str(c)) for c in classes), default=0) > 3
    ax.set_xticks(range(n), labels=list(classes), rotation=45 if long_labels else 0,
                  ha="right" if long_labels else "center")
    ax.set_yticks(range(n), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    fontsize = 9 if n <= 12 else 7 if n <= 20 else 5
    for i in range(n):
        for j in range(n):
            if counts[i, j] or i == j:
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", fontsize=fontsize,
                        color="white" if share[i, j] > 0.5 else "black")
    total = counts.sum()
    acc = np.trace(counts) / total if total else float("nan")
    ax.set_title(f"{title} (accuracy {acc:.2%}, n={total})")
    return fig


def training_curves_figure(history: Sequence[Mapping[str, float]], title: str = "Training") -> Figure:
    """Loss (left) and accuracies (right) per epoch from ``TrainResult.history``-style dicts.

    Metrics are grouped by name: keys containing ``loss`` go left, ``accuracy`` right; an epoch without a
    value (test accuracy evaluated every k epochs) is skipped rather than drawn as zero.
    """
    keys = list(dict.fromkeys(k for row in history for k in row))
    fig = _new_figure(10.0, 4.0)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, word in ((ax_loss, "loss"), (ax_acc, "accuracy")):
        for key in (k for k in keys if word in k):
            points = [(i + 1, row[key]) for i, row in enumerate(history) if key in row]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker="o" if len(points) <= 30 else None, markersize=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(word)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    ax_acc.set_ylim(top=1.0)
    fig.suptitle(title)
    return fig


__all__ = ["confusion_matrix_figure", "training_curves_figure"]
