"""How well does a proxy rank architectures?  Rank correlations with the ground truth, their intervals, the pick.

* Spearman and Kendall tau-b between proxy and ground-truth accuracy over every architecture both evaluated,
  over the top 5% **by ground truth** (does the proxy order the truly good ones?) and over the top 5% **by proxy**
  (are the ones it would pick ordered right?).  "Top 5%" is 5% of the architectures compared, rounded up, and at
  least :data:`MIN_TOP` (a rank correlation over two points is always +-1): :func:`top_count`; every correlation
  states how many architectures it is over.
* An architecture whose proxy (or whole-data) training failed is ranked **last**, tied with the other failures,
  and counted (``failed``): dropping it would flatter a proxy that fails often.
* A percentile bootstrap 95% interval for each correlation (architectures resampled with replacement, seeded,
  :data:`N_BOOT` resamples; a resample whose ranking is constant has no correlation and is left out), and for the
  difference in Spearman between two proxies a *paired* bootstrap (:func:`differences`: the same resampled
  architectures for both), so "A ranks better than B" is claimed only where that interval excludes zero.  Over
  fewer than :data:`MIN_BOOT` architectures there is no interval (NaN, printed as such): there the bootstrap
  is degenerate (3 perfectly ordered points give [1, 1]) and, simulated on bivariate-normal data with
  correlation 0.9 (Pearson), covers the truth in 35% (n=3) to 85% (n=6) of draws instead of 95%; from 8 on, 97%.
* The ground-truth accuracy of the architecture the proxy ranks first, next to the best one; search time (proxy
  trials plus making the proxy set) against whole-data time over the same architectures.
* Figures: proxy against ground truth with the top-5% bands (:func:`scatter_figure`) and the paper's Fig. 8, the
  distribution of proxy and ground-truth accuracy over the top 5% (:func:`top_distribution_figure`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState
from scipy import stats

from ddfad_apps.evidence.stats import CONFIDENCE
from ddfad_apps.nas.objective import holds

TOP_FRAC = 0.05
MIN_TOP = 3
N_BOOT = 2000
MIN_BOOT = 8
SUBSETS = ("all", "top_truth", "top_proxy")
_SUBSET_TEXT = {"all": "all", "top_truth": "top by truth", "top_proxy": "top by proxy"}


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


def top_count(n: int, frac: float = TOP_FRAC, minimum: int = MIN_TOP) -> int:
    """How many architectures "the top ``frac``" of ``n`` is: ``ceil(frac * n)``, at least ``minimum``, at most n."""
    if not 0.0 < frac <= 1.0:
        raise ValueError(f"top fraction must be in (0, 1], got {frac}")
    return min(n, max(minimum, math.ceil(round(frac * n, 9))))  # round: 0.05 * 60 is 3.0000000000000004


def top_rule(n: int, frac: float = TOP_FRAC, minimum: int = MIN_TOP) -> str:
    """The top-k rule in words, e.g. ``top 5% = 3 of 24 (5% of 24 is 1.2, rounded up to 2, raised to 3)``."""
    k, raw = top_count(n, frac, minimum), math.ceil(round(frac * n, 9))
    text = f"top {frac:.0%} = {k} of {n} architectures ({frac:.0%} of {n} is {frac * n:.3g}, rounded up to {raw}"
    if k > raw:
        text += f", raised to the minimum of {min(minimum, n)}"
    return text + ")"


def _ranked_last(values: np.ndarray) -> np.ndarray:
    """``values`` with every non-finite entry (a failed training) set below the lowest finite one (tied last)."""
    finite = np.isfinite(values)
    if finite.all():
        return values.astype(float)
    floor = float(values[finite].min()) - 1.0 if finite.any() else 0.0
    return np.where(finite, values, floor).astype(float)


def _spearman(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair of ``x``, ``y`` (shape (B, n)): Pearson of average ranks, as scipy; NaN
    for a row whose ranking is constant."""
    rx, ry = stats.rankdata(x, axis=-1), stats.rankdata(y, axis=-1)
    rx -= rx.mean(axis=-1, keepdims=True)
    ry -= ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(axis=-1) * (ry * ry).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(axis=-1) / den, np.nan)


def _kendall(x: np.ndarray, y: np.ndarray, chunk_elems: int = 4_000_000) -> np.ndarray:
    """Kendall's tau-b of each row pair (shape (B, n)), as scipy's default; NaN for a constant ranking.

    Vectorized over all pairs (O(n^2) per row) for small n, where it is many times faster than a loop of
    ``scipy.stats.kendalltau`` calls (O(n log n) each), which take over from about 100 architectures."""
    n = x.shape[-1]
    if n > 100:
        return np.array([stats.kendalltau(a, b).statistic for a, b in zip(x, y)], float)
    i, j = np.triu_indices(n, 1)
    out = np.empty(x.shape[0])
    step = max(1, chunk_elems // max(1, len(i)))
    for s in range(0, x.shape[0], step):
        dx = np.sign(x[s:s + step, j] - x[s:s + step, i])
        dy = np.sign(y[s:s + step, j] - y[s:s + step, i])
        pairs = len(i)
        den = np.sqrt((pairs - (dx == 0).sum(-1)) * (pairs - (dy == 0).sum(-1)))
        with np.errstate(invalid="ignore", divide="ignore"):
            out[s:s + step] = np.where(den > 0, (dx * dy).sum(-1) / den, np.nan)
    return out


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    """``n_boot`` bootstrap resamples of ``n`` architectures (row i: the indices drawn), seeded."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _interval(samples: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of the defined (finite) bootstrap values; NaN when none is defined."""
    ok = samples[np.isfinite(samples)]
    if len(ok) == 0:
        return math.nan, math.nan
    tail = 50 * (1 - confidence)
    low, high = np.percentile(ok, [tail, 100 - tail])
    return float(low), float(high)


@dataclass
class Correlation:
    """Spearman and Kendall over ``n`` architectures (``failed`` of them ranked last) with bootstrap intervals."""

    over: str
    n: int
    failed: int
    spearman: float
    spearman_low: float
    spearman_high: float
    kendall: float
    kendall_low: float
    kendall_high: float


def correlate(p: np.ndarray, g: np.ndarray, over: str = "all", n_boot: int = N_BOOT, seed: int = 0,
              confidence: float = CONFIDENCE) -> Correlation:
    """Rank correlation of proxy ``p`` and ground truth ``g`` (non-finite: failed, ranked last) with intervals."""
    failed = int((~np.isfinite(p)).sum())
    p, g = _ranked_last(np.asarray(p, float)), _ranked_last(np.asarray(g, float))
    if len(p) < 2:
        return Correlation(over, len(p), failed, *[math.nan] * 6)
    rho, tau = float(_spearman(p[None], g[None])[0]), float(_kendall(p[None], g[None])[0])
    if len(p) < MIN_BOOT:
        return Correlation(over, len(p), failed, rho, math.nan, math.nan, tau, math.nan, math.nan)
    idx = _resamples(len(p), n_boot, seed)
    return Correlation(over, len(p), failed, rho, *_interval(_spearman(p[idx], g[idx]), confidence),
                       tau, *_interval(_kendall(p[idx], g[idx]), confidence))


@dataclass
class ProxyReport:
    """One proxy against the ground truth: the correlations (``all``, ``top_truth``, ``top_proxy``), the pick,
    the cost.  ``n`` architectures are compared (both evaluated), ``top_n`` of them are "the top 5%"."""

    proxy: str
    n: int
    top_n: int
    correlations: dict[str, Correlation]
    picked_arch: str | None
    picked_truth: float
    best_arch: str | None
    best_truth: float
    proxy_seconds: float
    truth_seconds: float
    make_seconds: float = 0.0
    top_frac: float = TOP_FRAC
    failed: dict[str, str] = field(default_factory=dict)
    truth_failed: int = 0

    @property
    def spearman(self) -> float:
        return self.correlations["all"].spearman

    @property
    def kendall(self) -> float:
        return self.correlations["all"].kendall

    @property
    def speedup(self) -> float:
        search = self.proxy_seconds + self.make_seconds
        return self.truth_seconds / search if search > 0 else math.inf

    @property
    def top_rule(self) -> str:
        return top_rule(self.n, self.top_frac)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "spearman": self.spearman, "kendall": self.kendall, "speedup": self.speedup,
                "top_rule": self.top_rule}

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow: ``spearman``, ``spearman_low``, ..., ``top_truth.kendall_high``, ``speedup``."""
        out: dict[str, float] = {"n": self.n, "top_n": self.top_n, "failed": len(self.failed),
                                 "truth_failed": self.truth_failed, "picked_truth": self.picked_truth,
                                 "best_truth": self.best_truth, "proxy_seconds": self.proxy_seconds,
                                 "truth_seconds": self.truth_seconds, "make_seconds": self.make_seconds,
                                 "speedup": self.speedup}
        for over, c in self.correlations.items():
            prefix = "" if over == "all" else f"{over}."
            out.update({f"{prefix}{k}": float(v) for k, v in asdict(c).items() if k != "over"})
        return {k: float(v) for k, v in out.items() if v is not None}  # NaN: undefined (e.g. constant ranking)


def _aligned(proxy: Mapping[str, ArchResult], truth: Mapping[str, ArchResult]
             ) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Architectures both evaluated (a failure counts as evaluated), sorted, with their two accuracies."""
    archs = sorted(a for a in proxy if a in truth)
    return (archs, np.array([proxy[a].accuracy for a in archs], float),
            np.array([truth[a].accuracy for a in archs], float))


def _top(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``values`` (failures last; ties broken by architecture order)."""
    return np.argsort(-_ranked_last(values), kind="stable")[:k]


def compare(proxy_name: str, proxy: Mapping[str, ArchResult], truth: Mapping[str, ArchResult],
            top_frac: float = TOP_FRAC, min_top: int = MIN_TOP, make_seconds: float = 0.0, n_boot: int = N_BOOT,
            seed: int = 0) -> ProxyReport:
    """Report for the architectures both the proxy and the ground truth evaluated (failures ranked last)."""
    archs, p, g = _aligned(proxy, truth)
    k = top_count(len(archs), top_frac, min_top)
    by_truth, by_proxy = _top(g, k), _top(p, k)
    correlations = {"all": correlate(p, g, "all", n_boot, seed),
                    "top_truth": correlate(p[by_truth], g[by_truth], "top_truth", n_boot, seed),
                    "top_proxy": correlate(p[by_proxy], g[by_proxy], "top_proxy", n_boot, seed)}
    picked = archs[int(by_proxy[0])] if k and math.isfinite(p[by_proxy[0]]) else None
    finite_truth = [a for a in archs if math.isfinite(truth[a].accuracy)]
    best = max(finite_truth, key=lambda a: truth[a].accuracy) if finite_truth else None
    failed = {a: r.reason or r.state for a, r in proxy.items() if not math.isfinite(r.accuracy)}
    return ProxyReport(
        proxy_name, len(archs), k, correlations, picked, truth[picked].accuracy if picked else math.nan,
        best, truth[best].accuracy if best else math.nan,
        float(np.nansum([proxy[a].seconds for a in archs])), float(np.nansum([truth[a].seconds for a in archs])),
        make_seconds, top_frac, failed, int((~np.isfinite(g)).sum()))


def budget_convergence(shorter: Mapping[str, ArchResult], longer: Mapping[str, ArchResult], label: str = "",
                       n_boot: int = N_BOOT, seed: int = 0) -> ProxyReport:
    """Has the ground truth's ranking stopped moving?  The ground truth at one budget (e.g. E epochs) treated as a
    proxy of the ground truth at a longer one (2E): Spearman/Kendall with bootstrap intervals, over all and the
    top 5%, exactly as a proxy is judged.  A Spearman near 1 with a tight interval says E epochs rank like 2E."""
    return compare(label or "shorter budget", shorter, longer, n_boot=n_boot, seed=seed)


def format_convergence(report: ProxyReport, shorter: str, longer: str) -> str:
    """``ground truth 5 vs 10 epochs over 48 architectures: Spearman 0.93 [0.88, 0.96], Kendall ..., top 5% ...``"""
    c, t = report.correlations["all"], report.correlations["top_truth"]
    return (f"ground truth {shorter} vs {longer} over {c.n} architectures: Spearman "
            f"{_ci(c.spearman, c.spearman_low, c.spearman_high)}, "
            f"Kendall {_ci(c.kendall, c.kendall_low, c.kendall_high)}; top {t.n} by the longer budget: Spearman "
            f"{_ci(t.spearman, t.spearman_low, t.spearman_high)}; the shorter budget's first is "
            f"{'the longer' + chr(39) + 's best' if report.picked_arch == report.best_arch else str(report.picked_arch)}")


@dataclass
class Difference:
    """Spearman of proxy ``a`` minus that of proxy ``b`` over the same ``n`` architectures, paired bootstrap."""

    a: str
    b: str
    over: str
    n: int
    diff: float
    low: float
    high: float

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def verdict(self) -> str:
        span = f"{self.a} - {self.b} = {_ci(self.diff, self.low, self.high)} over {self.n} ({_SUBSET_TEXT[self.over]})"
        if not self.excludes_zero():
            return f"{span}: indistinguishable"
        better = self.a if self.diff > 0 else self.b
        return f"{span}: {better} ranks better"


def differences(results: Mapping[str, Mapping[str, ArchResult]], truth: Mapping[str, ArchResult],
                top_frac: float = TOP_FRAC, min_top: int = MIN_TOP, n_boot: int = N_BOOT, seed: int = 0,
                confidence: float = CONFIDENCE) -> list[Difference]:
    """Every pair of proxies: the difference of their Spearman over all architectures both (and the ground truth)
    evaluated, and over the top 5% of those by ground truth, each with a paired bootstrap interval: one set of
    resampled architectures serves both proxies, so what they share (the same hard architectures) cancels."""
    out: list[Difference] = []
    for a, b in itertools.combinations(results, 2):
        archs = sorted(x for x in results[a] if x in results[b] and x in truth)
        if len(archs) < 2:
            continue
        pa, pb, g = (_ranked_last(np.array([r[x].accuracy for x in archs], float))
                     for r in (results[a], results[b], truth))
        for over, sel in (("all", np.arange(len(archs))), ("top_truth", _top(g, top_count(len(archs), top_frac,
                                                                                            min_top)))):
            xa, xb, xg = pa[sel], pb[sel], g[sel]
            diff = float(_spearman(xa[None], xg[None])[0] - _spearman(xb[None], xg[None])[0])
            low = high = math.nan  # too few architectures for an interval (see MIN_BOOT)
            if len(sel) >= MIN_BOOT:
                idx = _resamples(len(sel), n_boot, seed)
                low, high = _interval(_spearman(xa[idx], xg[idx]) - _spearman(xb[idx], xg[idx]), confidence)
            out.append(Difference(a, b, over, len(sel), diff, low, high))
    return out


def _ci(value: float, low: float, high: float) -> str:
    """``+0.500 [+0.100, +0.800]``; ``+0.500 [no CI]`` over too few architectures; ``n/a`` when undefined."""
    if not math.isfinite(value):
        return "n/a"
    return f"{value:+.3f} [{low:+.3f}, {high:+.3f}]" if math.isfinite(low) else f"{value:+.3f} [no CI]"


def format_reports(reports: list[ProxyReport], diffs: list[Difference] | None = None) -> str:
    """The report as text: one row per proxy and subset, then picks, the top-5% rule and proxy differences."""
    head = f"{'proxy':<15} {'over':<13} {'archs':>5} {'failed':>6} {'spearman [95% CI]':>25} {'kendall [95% CI]':>25}"
    lines = [head, "-" * len(head)]
    for r in reports:
        for over, c in r.correlations.items():
            lines.append(f"{r.proxy:<15} {_SUBSET_TEXT[over]:<13} {c.n:>5} {c.failed:>6} "
                         f"{_ci(c.spearman, c.spearman_low, c.spearman_high):>25} "
                         f"{_ci(c.kendall, c.kendall_low, c.kendall_high):>25}")
    lines.append("")
    for r in reports:
        truth_failed = f", {r.truth_failed} failed whole-data training (ranked last)" if r.truth_failed else ""
        lines.append(f"{r.proxy}: picks {r.picked_arch} (whole-data acc {r.picked_truth:.4f}; best {r.best_arch} "
                     f"{r.best_truth:.4f}); {len(r.failed)} failed proxy trials (ranked last){truth_failed}; "
                     f"search {r.proxy_seconds + r.make_seconds:.0f}s vs whole data {r.truth_seconds:.0f}s "
                     f"({r.speedup:.1f}x)")
    if reports:
        lines.append(f"{reports[0].top_rule}; intervals: {CONFIDENCE:.0%} percentile bootstrap over architectures "
                     f"(none over fewer than {MIN_BOOT}: [no CI])")
    if diffs:
        lines.append("Spearman differences (paired bootstrap):")
        lines.extend(f"  {d.verdict()}" for d in diffs)
    return "\n".join(lines)


def _failed_x(values: list[float]) -> float:
    """Where a failed proxy trial is drawn: left of every finite proxy accuracy."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return 0.0
    return min(finite) - 0.05 * (max(finite) - min(finite) or 1.0)


def _lowest(values: np.ndarray) -> float:
    """The lowest finite value (where a top-k band starts); NaN when there is none."""
    finite = values[np.isfinite(values)]
    return float(finite.min()) if len(finite) else math.nan


def scatter_figure(results: dict[str, tuple[dict[str, ArchResult], ProxyReport]], truth: dict[str, ArchResult]):
    """One panel per proxy: proxy accuracy against whole-data accuracy; the top-5% bands by ground truth
    (horizontal) and by proxy (vertical) shaded, failed proxy trials drawn at the left, the pick starred."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(results))
    fig, axes = plt.subplots(1, n, figsize=(4.4 * n, 4.2), squeeze=False)
    for ax, (name, (proxy, rep)) in zip(axes[0], results.items()):
        archs, p, g = _aligned(proxy, truth)
        shown = np.isfinite(g)
        fail_x = _failed_x(list(p))
        x = np.where(np.isfinite(p), p, fail_x)
        ok = shown & np.isfinite(p)
        ax.scatter(x[ok], g[ok], s=14, alpha=0.7, label="architecture")
        if (shown & ~np.isfinite(p)).any():
            ax.scatter(x[shown & ~np.isfinite(p)], g[shown & ~np.isfinite(p)], s=24, marker="x", color="gray",
                       label="proxy failed (ranked last)")
        if rep.top_n and len(archs):
            g_cut, p_cut = _lowest(g[_top(g, rep.top_n)]), _lowest(p[_top(p, rep.top_n)])
            if math.isfinite(g_cut):
                ax.axhspan(g_cut, np.nanmax(g), color="tab:green", alpha=0.12, label=f"top {rep.top_n} by truth")
            if math.isfinite(p_cut):
                ax.axvspan(p_cut, np.nanmax(p), color="tab:orange", alpha=0.12, label=f"top {rep.top_n} by proxy")
        if rep.picked_arch:
            ax.scatter([proxy[rep.picked_arch].accuracy], [truth[rep.picked_arch].accuracy], s=70, marker="*",
                       color="red", label="picked", zorder=3)
        ax.legend(loc="lower right", fontsize=7)
        c = rep.correlations["all"]
        ax.set_title(f"{name}: rho {c.spearman:.2f} [{c.spearman_low:.2f}, {c.spearman_high:.2f}], "
                     f"tau {c.kendall:.2f} (n={c.n}, {c.failed} failed)", fontsize=8)
        ax.set_xlabel("proxy test accuracy")
        ax.set_ylabel("whole-data test accuracy")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def top_distribution_figure(results: dict[str, tuple[dict[str, ArchResult], ProxyReport]],
                            truth: dict[str, ArchResult]):
    """The paper's Fig. 8: the distribution of accuracy over the top 5%.  Per proxy, its top 5% by proxy:
    their proxy accuracy and their whole-data accuracy; last, the true top 5%'s whole-data accuracy, the
    reference a proxy's picks are measured against.  Boxes with every architecture drawn (the sets are small)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: list[tuple[str, list[float], str]] = []
    ref: tuple[str, list[float], int] | None = None  # the true top 5% of the largest comparison
    for name, (proxy, rep) in results.items():
        archs, p, g = _aligned(proxy, truth)
        if not archs:
            continue
        sel = _top(p, rep.top_n)
        groups.append((f"{name}\nproxy acc.", [float(v) for v in p[sel] if math.isfinite(v)], "tab:orange"))
        groups.append((f"{name}\nwhole-data acc.", [float(v) for v in g[sel] if math.isfinite(v)], "tab:blue"))
        if ref is None or len(archs) > ref[2]:
            ref = (f"true top {rep.top_n}\nwhole-data acc.",
                   [float(v) for v in g[_top(g, rep.top_n)] if math.isfinite(v)], len(archs))
    if ref is not None:
        groups.append((ref[0], ref[1], "tab:green"))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.3 * len(groups) + 1), 4.2))
    data = [v if v else [math.nan] for _, v, _ in groups]
    if groups:
        box = ax.boxplot(data, patch_artist=True, widths=0.55, showfliers=False)
        for patch, (_, _, color) in zip(box["boxes"], groups):
            patch.set_facecolor(color)
            patch.set_alpha(0.35)
        rng = np.random.default_rng(0)
        for i, (_, values, color) in enumerate(groups, start=1):
            ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=14, color=color, zorder=3)
        ax.set_xticks(range(1, len(groups) + 1), [label for label, _, _ in groups], fontsize=7)
    ax.set_ylabel("test accuracy")
    ax.set_title("Top 5% by proxy: proxy vs whole-data accuracy (Fig. 8)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return fig
