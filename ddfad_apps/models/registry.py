"""Build a model by name, so configs, the CLI and the NAS search space refer to architectures as strings."""

from __future__ import annotations

from typing import Any

from torch import nn

from ddfad_apps.models.convnet import ConvNet
from ddfad_apps.models.resnet import ResNet18
from ddfad_apps.models.vgg import VGG11

_MODELS: dict[str, type[nn.Module]] = {"convnet": ConvNet, "resnet18": ResNet18, "vgg11": VGG11}
MODEL_NAMES: tuple[str, ...] = tuple(_MODELS)


def build_model(name: str, num_classes: int, input_shape: tuple[int, int, int], **kwargs: Any) -> nn.Module:
    """Instantiate ``name`` (case-insensitive) for inputs of shape (C, H, W); kwargs go to the constructor.

    Raises ValueError for an unknown name or an input the architecture cannot process.
    """
    key = str(name).lower()
    if key not in _MODELS:
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    channels, height, width = (int(s) for s in input_shape)
    return _MODELS[key](in_channels=channels, num_classes=num_classes, input_size=(height, width), **kwargs)
