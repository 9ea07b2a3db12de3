"""The distillation engine: a few synthetic FD-MFCC clips per class that train a network almost as well as all.

Methods (one module each): ``mtt`` (Matching Training Trajectories, the DDFAD method; needs ``experts``),
``dc`` (gradient matching, and DSA with siamese ``augment``), ``dm`` (distribution matching) and the
``coreset`` baselines (random, herding, k-center).  Every method returns a :class:`SyntheticSet`;
:func:`distill` runs any of them by name with a preset (``presets``), :func:`evaluate` trains fresh networks
on the result.
"""

from ddfad_apps.distill.api import distill
from ddfad_apps.distill.evaluate import EvalResult, evaluate
from ddfad_apps.distill.presets import METHODS, PRESETS, method_settings
from ddfad_apps.distill.synthetic_set import NotEnoughClipsError, SyntheticSet, check_clips_per_class

__all__ = ["EvalResult", "METHODS", "NotEnoughClipsError", "PRESETS", "SyntheticSet", "check_clips_per_class",
           "distill", "evaluate", "method_settings"]
