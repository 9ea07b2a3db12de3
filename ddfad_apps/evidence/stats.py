"""Summaries of accuracies measured over seeds: mean, sample std, a t-interval of the mean, paired differences.

Pure functions on plain numbers, so every table of the toolkit states its uncertainty the same way.  The rule for
claims: "A beats B" only where the 95% interval of the paired difference (same seeds) excludes zero; otherwise
the two are indistinguishable at that number of seeds.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats as _scipy_stats

CONFIDENCE = 0.95


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation and the two-sided t-interval of the mean of ``n`` values.

    With fewer than two values there is no spread to estimate: ``std`` is 0 and the interval is unbounded
    (``low``/``high`` are -inf/+inf, written as ``None`` in JSON), so no claim can rest on a single seed.
    """

    n: int
    mean: float
    std: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def as_dict(self) -> dict[str, Any]:
        finite = math.isfinite(self.low) and math.isfinite(self.high)
        return {"n": self.n, "mean": self.mean, "std": self.std, "ci_low": self.low if finite else None,
                "ci_high": self.high if finite else None, "confidence": self.confidence}

    def format(self, scale: float = 100.0, digits: int = 2) -> str:
        """``mean +- std [low, high]`` (in percent by default)."""
        ci = (f"[{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"
              if math.isfinite(self.half_width) else "[no interval: 1 seed]")
        return f"{scale * self.mean:.{digits}f} +- {scale * self.std:.{digits}f} {ci}"


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; an empty list is an error, not NaN."""
    if len(values) == 0:
        raise ValueError("mean of no values: at least one seed is needed")
    return statistics.fmean(values)


def sample_std(values: Sequence[float]) -> float:
    """Standard deviation with ``n - 1`` in the denominator (0 for a single value)."""
    return statistics.stdev(values) if len(values) > 1 else 0.0


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Two-sided ``confidence`` t-interval of the mean: mean +- t_{n-1} * s / sqrt(n); unbounded for n < 2."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    m, n = mean(values), len(values)
    if n < 2:
        return -math.inf, math.inf
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2, n - 1)) * sample_std(values) / math.sqrt(n)
    return m - half, m + half


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    """:class:`Summary` of ``values`` (one per seed)."""
    values = [float(v) for v in values]
    low, high = t_interval(values, confidence)
    return Summary(len(values), mean(values), sample_std(values), low, high, confidence)


def paired_values(a: Sequence[float] | Mapping[Any, float],
                  b: Sequence[float] | Mapping[Any, float]) -> list[float]:
    """``a[i] - b[i]`` for results measured on the same seeds.

    Lists are paired by position and must have the same length; mappings ``{seed: value}`` are paired by key and
    must have the same keys, so a difference is never taken between different seeds.
    """
    if isinstance(a, Mapping) or isinstance(b, Mapping):
        if not (isinstance(a, Mapping) and isinstance(b, Mapping)):
            raise TypeError("pair two {seed: value} mappings or two lists, not one of each")
        if set(a) != set(b):
            raise ValueError(f"paired results need the same seeds: {sorted(a, key=str)} vs {sorted(b, key=str)}")
        return [float(a[k]) - float(b[k]) for k in sorted(a, key=str)]
    if len(a) != len(b):
        raise ValueError(f"paired results need the same seeds: {len(a)} values against {len(b)}")
    return [float(x) - float(y) for x, y in zip(a, b)]


def paired_difference(a: Sequence[float] | Mapping[Any, float], b: Sequence[float] | Mapping[Any, float],
                      confidence: float = CONFIDENCE) -> Summary:
    """:class:`Summary` of the per-seed differences ``a - b`` (the paired t-interval)."""
    return summarize(paired_values(a, b), confidence)


def verdict(name_a: str, name_b: str, diff: Summary, scale: float = 100.0) -> str:
    """The sentence a table may print: who beats whom, only where the paired interval excludes zero."""
    pct = f"{diff.confidence:.0%}"
    if diff.excludes_zero():
        winner, loser = (name_a, name_b) if diff.mean > 0 else (name_b, name_a)
        return (f"{winner} beats {loser} by {scale * abs(diff.mean):.2f} points "
                f"({pct} interval of {name_a} - {name_b}: [{scale * diff.low:.2f}, {scale * diff.high:.2f}], "
                f"{diff.n} seeds)")
    return f"{name_a} and {name_b} are indistinguishable at {diff.n} seed{'s' if diff.n != 1 else ''} " + (
        f"({pct} interval of {name_a} - {name_b}: [{scale * diff.low:.2f}, {scale * diff.high:.2f}])"
        if math.isfinite(diff.half_width) else "(no interval from one seed)")
