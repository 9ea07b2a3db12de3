"""Audio features: FD-MFCC (MFCC + first and second differences stacked as channels), MFCC and LPCC.

``functional`` holds the pure batched torch code, ``transforms`` thin modules around it, ``config`` the frozen
settings that also key the on-disk cache, and ``dataset.load_features`` the one call that turns a data set name
into normalised train/test tensors.
"""

from ddfad_apps.features.config import FeatureConfig
from ddfad_apps.features.dataset import FeatureSet, FeatureSplits, extract_clip_features, load_features
from ddfad_apps.features.normalize import FeatureStats
from ddfad_apps.features.transforms import FDMFCC, LPCC, MFCC, Delta, FeatureExtractor

__all__ = [
    "FDMFCC", "LPCC", "MFCC", "Delta", "FeatureConfig", "FeatureExtractor", "FeatureSet", "FeatureSplits",
    "FeatureStats", "extract_clip_features", "load_features",
]
