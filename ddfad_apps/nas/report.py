"""How well does a proxy rank architectures?  Rank correlations with the ground truth, the pick, the cost.

* Spearman and Kendall tau (scipy.stats) between proxy and ground-truth accuracy over every architecture both
  evaluated, and over the top ``top_frac`` by proxy accuracy (at least ``min_top`` architectures, since a rank
  correlation over two points is always +-1);
* the ground-truth accuracy of the architecture the proxy ranks first, next to the best one;
* search time (proxy trials plus making the proxy set) against whole-data time over the same architectures.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy import stats

from ddfad_apps.nas.objective import holds


@dataclass
class ArchResult:
    accuracy: float
    seconds: float
    state: str
    reason: str | None = None
    trial: int | None = None


def collect(study: optuna.Study) -> dict[str, ArchResult]:
    """One result per architecture: the trial that holds it (completed, or failed with a reason)."""
    out: dict[str, ArchResult] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
        arch = t.user_attrs.get("arch")
        if arch is None or arch in out or not holds(t):
            continue
        acc = t.value if t.state == TrialState.COMPLETE and t.value is not None else math.nan
        out[arch] = ArchResult(acc, float(t.user_attrs.get("seconds", math.nan)), t.state.name,
                               t.user_attrs.get("fail_reason"), t.number)
    return out


@dataclass
class ProxyReport:
    proxy: str
    n: int
    spearman: float
    kendall: float
    top_n: int
    top_spearman: float
    top_kendall: float
    picked_arch: str | None
    picked_truth: float
    best_arch: str | None
    best_truth: float
    proxy_seconds: float
    truth_seconds: float
    make_seconds: float = 0.0
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        search = self.proxy_seconds + self.make_seconds
        return self.truth_seconds / search if search > 0 else math.inf

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "speedup": self.speedup}


def _corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan, math.nan  # undefined for fewer than 2 points or a constant ranking
    return float(stats.spearmanr(x, y).statistic), float(stats.kendalltau(x, y).statistic)


def compare(proxy_name: str, proxy: dict[str, ArchResult], truth: dict[str, ArchResult], top_frac: float = 0.05,
            min_top: int = 5, make_seconds: float = 0.0) -> ProxyReport:
    """Report for the architectures both the proxy and the ground truth evaluated with a finite accuracy."""
    common = sorted(a for a in proxy if a in truth and math.isfinite(proxy[a].accuracy)
                    and math.isfinite(truth[a].accuracy))
    p = np.array([proxy[a].accuracy for a in common])
    g = np.array([truth[a].accuracy for a in common])
    rho, tau = _corr(p, g)
    k = min(len(common), max(min_top, math.ceil(top_frac * len(common))))
    top = np.argsort(-p, kind="stable")[:k]
    top_rho, top_tau = _corr(p[top], g[top])
    picked = common[int(top[0])] if common else None
    best = common[int(np.argmax(g))] if common else None
    failed = {a: r.reason or r.state for a, r in proxy.items() if not math.isfinite(r.accuracy)}
    return ProxyReport(
        proxy_name, len(common), rho, tau, k, top_rho, top_tau, picked,
        truth[picked].accuracy if picked else math.nan, best, truth[best].accuracy if best else math.nan,
        float(sum(proxy[a].seconds for a in common)), float(sum(truth[a].seconds for a in common)),
        make_seconds, failed)


def format_reports(reports: list[ProxyReport]) -> str:
    head = (f"{'proxy':<15} {'archs':>5} {'spearman':>8} {'kendall':>8} {'top-k':>5} {'top rho':>8} {'top tau':>8} "
            f"{'picked':>7} {'best':>6} {'search s':>9} {'whole s':>8} {'speedup':>7}")
    lines = [head, "-" * len(head)]
    for r in reports:
        lines.append(
            f"{r.proxy:<15} {r.n:>5} {r.spearman:>8.3f} {r.kendall:>8.3f} {r.top_n:>5} {r.top_spearman:>8.3f} "
            f"{r.top_kendall:>8.3f} {r.picked_truth:>7.4f} {r.best_truth:>6.4f} "
            f"{r.proxy_seconds + r.make_seconds:>9.0f} {r.truth_seconds:>8.0f} {r.speedup:>6.1f}x")
    for r in reports:
        lines.append(f"{r.proxy}: picks {r.picked_arch} (whole-data acc {r.picked_truth:.4f}; best {r.best_arch} "
                     f"{r.best_truth:.4f}); {len(r.failed)} failed")
    return "\n".join(lines)


def scatter_figure(results: dict[str, tuple[dict[str, ArchResult], ProxyReport]], truth: dict[str, ArchResult]):
    """One panel per proxy: proxy accuracy against whole-data accuracy, the proxy's pick highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(results))
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 4), squeeze=False)
    for ax, (name, (proxy, rep)) in zip(axes[0], results.items()):
        archs = [a for a in proxy if a in truth and math.isfinite(proxy[a].accuracy) and math.isfinite(truth[a].accuracy)]
        ax.scatter([proxy[a].accuracy for a in archs], [truth[a].accuracy for a in archs], s=14, alpha=0.7)
        if rep.picked_arch:
            ax.scatter([proxy[rep.picked_arch].accuracy], [truth[rep.picked_arch].accuracy], s=60, marker="*",
                       color="red", label="picked")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"{name}: rho {rep.spearman:.2f}, tau {rep.kendall:.2f} (n={rep.n})", fontsize=9)
        ax.set_xlabel("proxy test accuracy")
        ax.set_ylabel("whole-data test accuracy")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
