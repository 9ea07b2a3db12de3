"""Run a model on a flat parameter vector, for trajectory matching (MTT).

MTT's student is unrolled for N SGD steps starting from an expert checkpoint, and the loss is
differentiated through those steps back to the synthetic data (and learnable learning rate). That
is simplest when all weights are one 1-D tensor: each step is ``flat = flat - lr * grad`` and the
expert trajectory is a list of flat vectors. These helpers convert between that vector and the
module's named parameters and call the module with ``torch.func.functional_call``, so the module
itself is never mutated and gradients reach the vector.

The flat layout is ``model.named_parameters()`` order, the same as ``model.parameters()``, so
``torch.nn.utils.vector_to_parameters(flat, model.parameters())`` loads a vector back into a model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def flatten_params(model: nn.Module) -> torch.Tensor:
    """Concatenate ``model.named_parameters()`` into a new 1-D tensor (detached, not sharing memory).

    The copy is a fresh leaf: call ``.requires_grad_()`` on it to train it as the student's weights
    without touching the module, and without the module's later updates leaking into it.
    """
    return torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])


@dataclass(frozen=True)
class ParamSpec:
    """Names, shapes and sizes of a module's parameters: the recipe to cut a flat vector back up."""

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    numels: tuple[int, ...]

    @classmethod
    def from_module(cls, model: nn.Module) -> ParamSpec:
        named = list(model.named_parameters())
        return cls(
            names=tuple(n for n, _ in named),
            shapes=tuple(p.shape for _, p in named),
            numels=tuple(p.numel() for _, p in named),
        )

    @property
    def total(self) -> int:
        """Length of the flat vector."""
        return sum(self.numels)

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``flat`` into named parameter views (no copy, so autograd flows back to ``flat``)."""
        if flat.dim() != 1 or flat.numel() != self.total:
            raise ValueError(f"expected a 1-D vector of {self.total} values, got shape {tuple(flat.shape)}")
        return {n: t.view(s) for n, s, t in zip(self.names, self.shapes, flat.split(list(self.numels)))}


def functional_forward(
    model: nn.Module,
    spec: ParamSpec,
    flat: torch.Tensor,
    x: torch.Tensor,
    buffers: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """``model(x)`` with its parameters replaced by ``flat`` (laid out as ``spec``).

    ``buffers`` (BatchNorm running statistics) default to the module's own and are passed through
    as given: in train mode BatchNorm updates them in place, as an ordinary forward would. The call
    is strict, so a spec from a different architecture fails loudly instead of silently falling
    back to the module's own weights.
    """
    if buffers is None:
        buffers = dict(model.named_buffers())
    return torch.func.functional_call(model, (spec.unflatten(flat), buffers), (x,), strict=True)
