"""The range guard: synthetic clips far outside the real inputs' range mean the distillation diverged.

Why (issue 12): a memory whose values reached +-100,000 for inputs in [0, 1] trained networks to chance without a
word.  MTT and DM check their clips after every update against the real inputs' ``[min, max]`` widened by
``max_range`` spreads, and stop with :class:`SyntheticRangeError` (never a silent result).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from ddfad_apps.training.loops import NonFiniteLossError

STEP_RULES: tuple[str, ...] = ("scale_free", "absolute")
"""How a method moves its clips: ``scale_free`` (the gradient normalised to unit RMS, ``lr_img`` in the inputs'
spreads, whatever the network's input gradients) or ``absolute`` (SGD on the raw gradients, the papers' steps)."""


class SyntheticRangeError(NonFiniteLossError):
    """The synthetic clips left the real inputs' range by far: the distillation diverged (never a silent result)."""


@dataclass(frozen=True)
class InputRange:
    """The real inputs' ``[lo, hi]`` and spread (std), in the units the clips are updated in."""

    lo: float
    hi: float
    spread: float

    @classmethod
    def of(cls, features: torch.Tensor) -> InputRange:
        return cls(float(features.min()), float(features.max()), float(features.std()) or 1.0)

    def overshoot(self, syn: torch.Tensor) -> float:
        """How far ``syn`` reaches beyond ``[lo, hi]``, in spreads (0 when inside)."""
        s_lo, s_hi = float(syn.detach().min()), float(syn.detach().max())
        return max(self.lo - s_lo, s_hi - self.hi, 0.0) / self.spread

    def check(self, syn: torch.Tensor, max_range: float, method: str, iteration: int, hint: str = "",
              detail: Callable[[float, float], str] | None = None) -> None:
        """Raise :class:`SyntheticRangeError` when ``syn`` spans beyond ``[lo, hi] +- max_range`` spreads
        (``detail(s_lo, s_hi)``, called only then, adds to the message, e.g. the span in the data's own units)."""
        if self.overshoot(syn) > max_range:
            s_lo, s_hi = float(syn.detach().min()), float(syn.detach().max())
            raise SyntheticRangeError(
                f"{method} synthetic clips left the real inputs' range at iteration {iteration}: they span "
                f"[{s_lo:.4g}, {s_hi:.4g}] against the real [{self.lo:.4g}, {self.hi:.4g}] +- {max_range:g} spreads "
                f"({self.spread:.4g} each){detail(s_lo, s_hi) if detail else ''}; lower lr_img{hint}")


def scale_free_step(grad: torch.Tensor, spread: float = 1.0) -> None:
    """Normalise ``grad`` in place to an RMS of ``spread``, so that an optimizer step of rate ``lr_img`` moves the
    clips by about ``lr_img`` spreads (before momentum), whatever the scale of the network's input gradients."""
    rms = grad.square().mean().sqrt()
    if rms > 0:
        grad.mul_(spread / rms)


SCALE_FREE_HINT = (", or use the scale-free step rule (steps='scale_free'), whose clip steps are measured in the "
                   "inputs' spread whatever the network's input gradients")
