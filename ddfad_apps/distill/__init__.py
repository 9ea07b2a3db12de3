"""The distillation engine: a few synthetic FD-MFCC clips per class that train a network almost as well as all.

Methods (one module each): ``mtt`` (Matching Training Trajectories, the DDFAD method; needs ``experts``),
``dc`` (gradient matching, and DSA with siamese ``augment``), ``dm`` (distribution matching) and the
``coreset`` baselines (random, herding, k-center).  Every method returns a :class:`SyntheticSet`.
"""

from ddfad_apps.distill.synthetic_set import NotEnoughClipsError, SyntheticSet, check_clips_per_class

__all__ = ["NotEnoughClipsError", "SyntheticSet", "check_clips_per_class"]
