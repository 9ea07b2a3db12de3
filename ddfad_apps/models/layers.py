"""Named building blocks and the downsampling rule shared by ConvNet, ResNet18 and VGG11.

The three architectures take the same option strings (from configs and the NAS search space) and
must all cope with small, non-square FD-MFCC maps such as 20x51 or 13x30, so option parsing, the
"how far may we downsample" rule and the construction-time dry run live here once.

Downsampling rule (pooling in ConvNet/VGG11, strided convolutions in ResNet18), decided at
construction from ``input_size``:

* a dimension of size 1 is not downsampled (factor 1 in that dimension, e.g. a (1, 2) pool), so
  no map ever shrinks to zero;
* a downsampling step that would collapse the map to 1x1 is dropped while normalised
  convolutions still follow, because instance norm over a 1x1 map outputs a constant (the network
  would ignore its input). The last pooling before the classifier may still reach 1x1.

On inputs where nothing needs skipping (e.g. 32x32, or 20x51 with the default depths) this is
exactly the DC/MTT behaviour (floor-mode 2x2 pools, stride-2 convolutions).
"""

from __future__ import annotations

import torch
from torch import nn

Size2d = tuple[int, int]

NORMS: tuple[str, ...] = ("none", "batchnorm", "layernorm", "instancenorm", "groupnorm")
ACTIVATIONS: tuple[str, ...] = ("sigmoid", "relu", "leakyrelu")
POOLINGS: tuple[str, ...] = ("none", "maxpooling", "avgpooling")

_ALIASES: dict[str, str] = {
    "batch": "batchnorm",
    "layer": "layernorm",
    "instance": "instancenorm",
    "group": "groupnorm",
    "max": "maxpooling",
    "avg": "avgpooling",
}


def canonical(option: str, value: str, choices: tuple[str, ...]) -> str:
    """Resolve a case-insensitive option name or short alias to its canonical spelling."""
    name = _ALIASES.get(str(value).lower(), str(value).lower())
    if name not in choices:
        aliases = sorted(a for a, c in _ALIASES.items() if c in choices)
        hint = f" (aliases: {', '.join(aliases)})" if aliases else ""
        raise ValueError(f"unknown {option} {value!r}; expected one of {', '.join(choices)}{hint}")
    return name


def make_norm(norm: str, channels: int) -> nn.Module | None:
    """Normalisation layer as in the DC code; GroupNorm(1, C) stands in for LayerNorm so any size works."""
    if norm == "none":
        return None
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    if norm == "layernorm":
        return nn.GroupNorm(1, channels)
    if norm == "instancenorm":
        return nn.GroupNorm(channels, channels)
    if norm == "groupnorm":
        if channels % 4:
            raise ValueError(f"norm 'groupnorm' is GroupNorm(4, C) and needs C divisible by 4; got C={channels}")
        return nn.GroupNorm(4, channels)
    raise ValueError(f"unknown norm {norm!r}")


def make_activation(activation: str) -> nn.Module:
    """Activation layer; leaky ReLU uses slope 0.01 like the DC code."""
    if activation == "sigmoid":
        return nn.Sigmoid()
    if activation == "relu":
        return nn.ReLU()
    if activation == "leakyrelu":
        return nn.LeakyReLU(0.01)
    raise ValueError(f"unknown activation {activation!r}")


def check_input(arch: str, in_channels: int, input_size: tuple[int, int], norm: str) -> Size2d:
    """Validate the input geometry early, so NAS records a clear failed trial instead of a crash."""
    size = tuple(int(s) for s in input_size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{arch} cannot process input size {tuple(input_size)}: need two positive sizes (H, W)")
    if int(in_channels) < 1:
        raise ValueError(f"{arch} needs in_channels >= 1, got {in_channels}")
    if norm == "instancenorm" and size == (1, 1):
        raise ValueError(
            f"{arch} with norm 'instancenorm' cannot process input size {size}: "
            "instance norm over a 1x1 map outputs a constant"
        )
    return size  # type: ignore[return-value]


def setup_network(net: nn.Module, arch: str, in_channels: int, num_classes: int, input_size: tuple[int, int],
                  norm: str, **sizes: int) -> tuple[str, Size2d]:
    """The checks and attributes every registry network starts with: canonical ``norm``, positive ``sizes`` and
    ``num_classes``, a processable input; sets ``in_channels``, ``num_classes``, ``input_size`` on ``net``."""
    norm = canonical("norm", norm, NORMS)
    sizes = {**sizes, "num_classes": num_classes}
    if min(sizes.values()) < 1:
        raise ValueError(f"{arch} needs {', '.join(sizes)} >= 1; got {', '.join(str(v) for v in sizes.values())}")
    size = check_input(arch, in_channels, input_size, norm)
    net.in_channels, net.num_classes, net.input_size = in_channels, num_classes, size
    return norm, size


def conv_norm_act(in_channels: int, out_channels: int, norm: str, activation: nn.Module) -> list[nn.Module]:
    """3x3 convolution, its normalisation (if any) and ``activation``: the block ConvNet and VGG stack."""
    layers: list[nn.Module] = [nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)]
    norm_layer = make_norm(norm, out_channels)
    if norm_layer is not None:
        layers.append(norm_layer)
    return layers + [activation]


def downsample(size: Size2d, *, ceil: bool, last: bool) -> tuple[Size2d, Size2d]:
    """Per-dimension factor (2, or 1 = skip) for one downsampling step, and the resulting size.

    ``ceil`` selects stride-2 convolution arithmetic (ceil(n/2)) instead of pooling (floor(n/2));
    ``last`` says no normalised convolution follows, so collapsing to 1x1 is allowed.
    """
    factor = tuple(2 if s >= 2 else 1 for s in size)
    new = tuple(-(-s // f) if ceil else s // f for s, f in zip(size, factor))
    if new == (1, 1) and not last:
        return (1, 1), size
    return factor, new  # type: ignore[return-value]


def dry_run(arch: str, module: nn.Module, in_channels: int, input_size: Size2d) -> torch.Size:
    """Output shape (without batch) of ``module`` on one zero input; failures become a ValueError.

    It runs for real on a single sample, without grad and in eval mode so BatchNorm statistics are
    untouched (the training flag is restored). Meta-device shape inference would skip the compute,
    but its first use imports sympy and costs seconds per process, more than this forward.
    """
    was_training = module.training
    x = torch.zeros(1, in_channels, *input_size)
    try:
        with torch.no_grad():
            out = module.eval()(x)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{arch} cannot process input size {tuple(input_size)}: {err}") from err
    finally:
        module.train(was_training)
    if out.numel() == 0:
        raise ValueError(f"{arch} cannot process input size {tuple(input_size)}: features reduce to zero size")
    return out.shape[1:]
