"""Is this data usable, and does a distilled set fit the data it is about to be evaluated on?

A network trained on a distilled set has output units and input features that mean what they meant in the data
set it was distilled from.  Tested on other data (other classes or class order, other feature settings, clip
length, sample rate or normalisation) it still returns an accuracy, one that looks like a result and is not: a
3-class set once scored 8.67% on 10-class FSDD without a word.  :func:`check_compatible` refuses that, naming
every difference; :func:`check_finite` refuses NaN/inf features up front, instead of letting them surface later
as a diverging loss blamed on the learning rate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ddfad_apps.data.clips import ClipList
    from ddfad_apps.distill.synthetic_set import SyntheticSet
    from ddfad_apps.features.dataset import FeatureSet
    from ddfad_apps.features.normalize import FeatureStats

# Normalisation statistics are fitted on the same clips by the same code, so they agree to float rounding
# (float32 sums in another order, another device); a different clip list moves them by far more.
STATS_RTOL = 1e-3
STATS_ATOL = 1e-4


class NonFiniteInputError(ValueError):
    """Features (training data, test data or a distilled set) hold NaN or infinite values."""


class IncompatibleSetError(ValueError):
    """A distilled set does not fit the data it is to be evaluated on; ``differences`` names what differs."""

    def __init__(self, message: str, differences: list[str]) -> None:
        super().__init__(message)
        self.differences = differences


def nonfinite_rows(features: torch.Tensor) -> torch.Tensor:
    """Indices of the clips (first dimension) that hold a NaN or infinite value."""
    if features.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    bad = ~torch.isfinite(features.detach().reshape(features.shape[0], -1)).all(dim=1)
    return torch.nonzero(bad, as_tuple=False).flatten().cpu()


def describe_nonfinite(features: torch.Tensor, what: str) -> str | None:
    """``"<what> contain NaN/inf in N clip(s), e.g. index i, j, k"``, or None when every value is finite."""
    rows = nonfinite_rows(features)
    if len(rows) == 0:
        return None
    first = ", ".join(str(int(i)) for i in rows[:5])
    return f"{what} contain NaN/inf in {len(rows)} of {features.shape[0]} clip(s), e.g. index {first}"


def check_finite(features: torch.Tensor, what: str) -> None:
    """Raise :class:`NonFiniteInputError` naming how many clips (and which) hold NaN/inf values."""
    message = describe_nonfinite(features, what)
    if message is not None:
        raise NonFiniteInputError(message)


def _names(classes: list[str], limit: int = 10) -> str:
    shown = ", ".join(repr(c) for c in classes[:limit])
    return f"[{shown}{', ...' if len(classes) > limit else ''}]"


def _class_difference(mine: list[str], theirs: list[str]) -> str | None:
    if list(mine) == list(theirs):
        return None
    if sorted(mine) == sorted(theirs):
        return f"same classes in another order (set: {_names(mine)}; data: {_names(theirs)})"
    parts = [f"classes differ (set has {len(mine)}: {_names(mine)}; data has {len(theirs)}: {_names(theirs)}"]
    only_set = [c for c in mine if c not in theirs]
    if only_set:
        parts.append(f"not in the data: {_names(only_set)}")
    return "; ".join(parts) + ")"


def _stats_difference(mine: FeatureStats, theirs: FeatureStats) -> str | None:
    if tuple(mine.mean.shape) != tuple(theirs.mean.shape):
        return (f"normalisation statistics have shape {tuple(mine.mean.shape)} in the set and "
                f"{tuple(theirs.mean.shape)} for the data")
    a_mean, a_std = mine.mean.detach().cpu().double(), mine.std.detach().cpu().double()
    b_mean, b_std = theirs.mean.detach().cpu().double(), theirs.std.detach().cpu().double()
    if torch.allclose(a_mean, b_mean, STATS_RTOL, STATS_ATOL) and torch.allclose(a_std, b_std, STATS_RTOL, STATS_ATOL):
        return None
    return (f"normalisation statistics differ (max |mean difference| {float((a_mean - b_mean).abs().max()):.4g}, "
            f"max |std difference| {float((a_std - b_std).abs().max()):.4g}): the data's training clips are not "
            "those the set was distilled from")


def set_differences(syn: SyntheticSet, data: FeatureSet | ClipList, stats: FeatureStats | None = None) -> list[str]:
    """Everything that makes ``syn`` unfit for ``data`` (empty when it fits).

    ``data`` is a :class:`FeatureSet` (classes, feature settings, sample rate, clip length, input shape) or a
    :class:`ClipList` (classes, sample rate, clip length).  ``stats`` are the data's normalisation statistics.
    A property the set does not record (made by older code or by hand) is not compared.
    """
    from ddfad_apps.data.clips import ClipList
    from ddfad_apps.features.config import FeatureConfig

    diffs: list[str] = []
    cls = _class_difference(list(syn.classes), list(data.classes))
    if cls:
        diffs.append(cls)
    if isinstance(data, ClipList):
        theirs: dict[str, Any] = {"sample_rate": data.sample_rate, "duration": data.duration}
        shape = None
    else:
        theirs = {"sample_rate": data.meta.get("sample_rate"), "duration": data.meta.get("duration")}
        shape = tuple(data.input_shape)
        mine_cfg, their_cfg = syn.meta.get("features"), data.meta.get("features")
        if isinstance(mine_cfg, dict) and isinstance(their_cfg, dict):
            # settings added since a set was saved take their (unchanged) default, e.g. ``window``
            mine_cfg, their_cfg = ({**FeatureConfig().as_dict(), **c} for c in (mine_cfg, their_cfg))
            changed = [f"{k} {mine_cfg.get(k)!r} vs {their_cfg.get(k)!r}"
                       for k in sorted(set(mine_cfg) | set(their_cfg)) if mine_cfg.get(k) != their_cfg.get(k)]
            if changed:
                diffs.append(f"feature settings differ (set vs data: {', '.join(changed)})")
    for key, label in (("sample_rate", "sample rate"), ("duration", "clip length (s)")):
        mine, other = syn.meta.get(key), theirs[key]
        if mine is not None and other is not None and float(mine) != float(other):
            diffs.append(f"{label} differs (set {mine}, data {other})")
    if shape is not None and tuple(syn.features.shape[1:]) != shape:
        diffs.append(f"input shape differs (set {tuple(syn.features.shape[1:])}, data {shape})")
    if stats is not None and syn.stats is not None:
        st = _stats_difference(syn.stats, stats)
        if st:
            diffs.append(st)
    nonfinite = describe_nonfinite(syn.features, "the set's features")
    if nonfinite:
        diffs.append(nonfinite)
    return diffs


def check_compatible(syn: SyntheticSet, data: FeatureSet | ClipList, stats: FeatureStats | None = None,
                     set_name: str = "the distilled set", data_name: str = "the data") -> None:
    """Raise :class:`IncompatibleSetError` naming every difference between ``syn`` and ``data`` (see
    :func:`set_differences`), so a set is never scored against data it does not describe."""
    diffs = set_differences(syn, data, stats)
    if diffs:
        raise IncompatibleSetError(f"{set_name} does not fit {data_name}: " + "; ".join(diffs), diffs)
