"""VGG-11 as used for cross-architecture evaluation in DC/MTT, adapted to small FD-MFCC maps.

Configuration [64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M] scaled by ``width / 64``;
each conv is Conv3x3 -> norm -> ReLU. Five 2x2 max-pools would reduce 20x51 below 1 pixel, so the
pools follow the small-map rule of :mod:`ddfad_apps.models.layers` (a dimension of size 1 is not
pooled; no collapse to 1x1 while convolutions follow). Global average pooling then feeds the
Linear classifier, so the classifier does not depend on the input size.
"""

from __future__ import annotations

import torch
from torch import nn

from ddfad_apps.models.layers import conv_norm_act, downsample, dry_run, setup_network

VGG11_CONFIG: tuple[int | str, ...] = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG11(nn.Module):
    """VGG-11 with configurable norm (default instance norm, as in DC/MTT) and width."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        norm: str = "instancenorm",
        width: int = 64,
        input_size: tuple[int, int] = (20, 51),
    ) -> None:
        super().__init__()
        norm, size = setup_network(self, "VGG11", in_channels, num_classes, input_size, norm, width=width)

        layers: list[nn.Module] = []
        channels = in_channels
        last_pool = max(i for i, v in enumerate(VGG11_CONFIG) if v == "M")
        for i, v in enumerate(VGG11_CONFIG):
            if v == "M":
                factor, size = downsample(size, ceil=False, last=i == last_pool)
                if factor != (1, 1):
                    layers.append(nn.MaxPool2d(kernel_size=factor))
                continue
            out = max(1, int(v) * width // 64)
            layers += conv_norm_act(channels, out, norm, nn.ReLU())
            channels = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = dry_run("VGG11", self.features, in_channels, self.input_size).numel()
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features before the classifier."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
