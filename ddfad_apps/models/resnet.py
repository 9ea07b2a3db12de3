"""CIFAR-style ResNet-18 as used for cross-architecture evaluation in DC/MTT.

3x3 stem without max-pool, four stages of two BasicBlocks (strides 1, 2, 2, 2), global average
pooling and a Linear classifier, so any input size runs. Default norm is instance norm
(GroupNorm(C, C)), as in the distillation literature. Stage strides follow the small-map rule of
:mod:`ddfad_apps.models.layers` (a stride of 1 where a dimension is already 1 or the map would
become 1x1), which changes nothing for 20x51 or 13x30 but keeps tiny inputs meaningful.
"""

from __future__ import annotations

import torch
from torch import nn

from ddfad_apps.models.layers import Size2d, downsample, dry_run, make_norm, setup_network


def _norm_or_identity(norm: str, channels: int) -> nn.Module:
    layer = make_norm(norm, channels)
    return nn.Identity() if layer is None else layer


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (1x1 projection when the shape changes)."""

    def __init__(self, in_planes: int, planes: int, stride: Size2d, norm: str) -> None:
        super().__init__()
        bias = norm == "none"  # a following norm makes the conv bias redundant
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=bias)
        self.norm1 = _norm_or_identity(norm, planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=bias)
        self.norm2 = _norm_or_identity(norm, planes)
        self.act = nn.ReLU()
        if stride != (1, 1) or in_planes != planes:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=bias),
                _norm_or_identity(norm, planes),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class ResNet18(nn.Module):
    """ResNet-18 (CIFAR variant); ``width`` is the first stage's channel count (64 in the paper)."""

    def __init__(
        self,
        in_channels: int = 3,
        num_classes: int = 10,
        norm: str = "instancenorm",
        width: int = 64,
        input_size: tuple[int, int] = (20, 51),
    ) -> None:
        super().__init__()
        norm, size = setup_network(self, "ResNet18", in_channels, num_classes, input_size, norm, width=width)

        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, kernel_size=3, padding=1, bias=norm == "none"),
            _norm_or_identity(norm, width),
            nn.ReLU(),
        ]
        planes_in = width
        for stage, stride in enumerate((1, 2, 2, 2)):
            planes = width * 2**stage
            factor: Size2d = (1, 1)
            if stride == 2:
                factor, size = downsample(size, ceil=True, last=False)
            blocks = (BasicBlock(planes_in, planes, factor, norm), BasicBlock(planes, planes, (1, 1), norm))
            layers.append(nn.Sequential(*blocks))
            planes_in = planes
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = dry_run("ResNet18", self.features, in_channels, self.input_size).numel()
        self.classifier = nn.Linear(self.feature_dim, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Globally pooled features before the classifier."""
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
