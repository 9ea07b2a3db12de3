"""ConvNet of the dataset-distillation literature (Zhao & Bilen DC, Cazenavette et al. MTT).

It is the standard distillation/evaluation backbone: ``depth`` x [Conv3x3 -> norm -> activation
-> 2x2 pool], then one Linear layer. Distilled data are tied to it, so the block layout, layer
defaults (conv bias, affine norms, leaky slope 0.01) follow the DC code. Differences: the input
is not padded to a square (the DC code pads 1-channel images with padding=3), and pooling follows
the small-map rule of :mod:`ddfad_apps.models.layers` so FD-MFCC inputs like 13x30 work at any depth.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ddfad_apps.models.layers import (
    ACTIVATIONS,
    POOLINGS,
    canonical,
    conv_norm_act,
    downsample,
    dry_run,
    make_activation,
    setup_network,
)


class ConvNet(nn.Module):
    """DC/MTT ConvNet; the classifier size is fixed at construction for ``input_size``.

    Options (case-insensitive; short aliases in brackets): activation in sigmoid, relu, leakyrelu;
    norm in none, batchnorm [batch], layernorm [layer] = GroupNorm(1, C), instancenorm [instance]
    = GroupNorm(C, C), groupnorm [group] = GroupNorm(4, C); pooling in none, maxpooling [max],
    avgpooling [avg]. Raises ValueError for options or inputs it cannot handle.
    """

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        depth: int = 3,
        width: int = 128,
        activation: str = "relu",
        norm: str = "instancenorm",
        pooling: str = "avgpooling",
        input_size: tuple[int, int] = (20, 51),
    ) -> None:
        super().__init__()
        activation = canonical("activation", activation, ACTIVATIONS)
        pooling = canonical("pooling", pooling, POOLINGS)
        norm, size = setup_network(self, "ConvNet", in_channels, num_classes, input_size, norm, depth=depth,
                                   width=width)

        layers: list[nn.Module] = []
        channels = in_channels
        for d in range(depth):
            layers += conv_norm_act(channels, width, norm, make_activation(activation))
            if pooling != "none":
                factor, size = downsample(size, ceil=False, last=d == depth - 1)
                if factor != (1, 1):
                    pool = nn.MaxPool2d if pooling == "maxpooling" else nn.AvgPool2d
                    layers.append(pool(kernel_size=factor))
            channels = width
        layers.append(nn.Flatten())
        self.features = nn.Sequential(*layers)
        self.feature_dim = math.prod(dry_run("ConvNet", self.features, in_channels, self.input_size))
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Flattened features before the classifier (used by distribution-matching losses)."""
        if x.shape[-2:] != self.input_size:
            raise ValueError(f"ConvNet was built for input size {self.input_size}, got {tuple(x.shape[-2:])}")
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))
