"""ConvNet / ResNet18 / VGG11 for FD-MFCC input (C, H, W), usable with ``torch.func.functional_call``.

All models take any input size (H, W): downsampling adapts to small non-square maps, and an input
an architecture cannot process raises ValueError at construction (NAS records a failed trial).
"""

from ddfad_apps.models.convnet import ConvNet
from ddfad_apps.models.functional import ParamSpec, flatten_params, functional_forward
from ddfad_apps.models.registry import MODEL_NAMES, build_model
from ddfad_apps.models.resnet import ResNet18
from ddfad_apps.models.vgg import VGG11

__all__ = [
    "ConvNet",
    "ResNet18",
    "VGG11",
    "build_model",
    "MODEL_NAMES",
    "flatten_params",
    "ParamSpec",
    "functional_forward",
]
