"""Freshly initialised copies of a user's own network, for the distillation methods that draw new networks (DM).

The toolkit's registry networks take ``(C, H, W)`` inputs; a user's stream may not (flat vectors for an MLP).
DM only needs networks it can draw anew and embed with, so any ``nn.Module`` serves: :class:`FreshCopies` deep-
copies it, re-initialises every layer that has ``reset_parameters`` from the caller's generator (the global RNG
is left alone, and the user's own model is never touched), and embeds with the features entering its last
``nn.Linear`` (the classifier's input, DM's embedding), or its flattened output when it has no linear layer.
"""

from __future__ import annotations

import copy
import warnings
from typing import Callable

import torch
from torch import nn

NetworkFactory = Callable[[torch.Generator | None, torch.device], nn.Module]
"""``(generator, device) -> network``: a newly initialised network with an ``embed(x) -> (N, D)`` method."""


class _Embedded(nn.Module):
    """``net`` whose :meth:`embed` returns the input of its last linear layer (else its flattened output)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        self._seen: list[torch.Tensor] = []
        if linears:
            linears[-1].register_forward_pre_hook(lambda _m, args: self._seen.append(args[0]))
        self._hooked = bool(linears)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._seen.clear()
        return self.net(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        self._seen.clear()
        out = self.net(x)
        if not self._hooked:
            return out.flatten(1)
        if not self._seen:
            raise ValueError(f"{type(self.net).__name__}'s last nn.Linear did not run in its forward; DM embeds "
                             "with that layer's input")
        return self._seen[-1].flatten(1)


class FreshCopies:
    """A :data:`NetworkFactory` over ``template``: each call returns a re-initialised copy (module docstring)."""

    def __init__(self, template: nn.Module) -> None:
        self.template = template
        self.name = type(template).__name__
        owned = {id(p) for m in template.modules() if callable(getattr(m, "reset_parameters", None))
                 for p in m.parameters(recurse=False)}
        kept = [n for n, p in template.named_parameters() if id(p) not in owned]
        if kept:  # said once, when the factory is made, not on every draw
            warnings.warn(f"{self.name}: parameters {', '.join(kept[:5])}{' ...' if len(kept) > 5 else ''} belong to "
                          "no layer with reset_parameters(), so every fresh copy keeps their current values",
                          stacklevel=2)

    def __call__(self, generator: torch.Generator | None, device: torch.device) -> nn.Module:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        net = copy.deepcopy(self.template)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for module in net.modules():
                reset = getattr(module, "reset_parameters", None)
                if callable(reset):
                    reset()
        return _Embedded(net).to(device).train()
