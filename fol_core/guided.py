"""Guided backpropagation as a per-call switch on a shared model, and per-call activation capture.

The web app serves many users from one loaded model, so neither the guided mode nor captured
activations may live in the model or in a process-global flag: both are keyed by a ContextVar,
which every thread (and every asyncio task) sees on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import nn

_guided_models: ContextVar[frozenset[int]] = ContextVar("fol_guided_models", default=frozenset())


class _GuidedClamp(torch.autograd.Function):
    """clamp(x, 0, upper) whose backward passes only positive gradients where the input was positive.

    The ReLU6 cap is ignored going backward, as in guided backprop's rule: a neuron saturated at 6
    would otherwise pass no gradient at all and give an empty map."""

    @staticmethod
    def forward(x: torch.Tensor, upper: float | None) -> torch.Tensor:
        return x.clamp(min=0.0, max=upper)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x = inputs[0]
        ctx.save_for_backward((x > 0).to(x.dtype))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (positive,) = ctx.saved_tensors
        return grad_out.clamp(min=0.0).mul_(positive), None


class SwitchableReLU(nn.Module):
    """A ReLU or ReLU6 that backpropagates guided gradients only while its model is in guided mode."""

    def __init__(self, upper: float | None, owner: int) -> None:
        super().__init__()
        self.upper = upper
        self.owner = owner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.owner in _guided_models.get():
            return _GuidedClamp.apply(x, self.upper)
        return x.clamp(min=0.0, max=self.upper)

    def extra_repr(self) -> str:
        return "relu6" if self.upper == 6.0 else "relu"


def make_switchable(model: nn.Module) -> nn.Module:
    """Replace every ReLU / ReLU6 (also in-place ones) by a SwitchableReLU owned by this model."""
    owner = id(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.ReLU6):
                setattr(parent, name, SwitchableReLU(6.0, owner))
            elif isinstance(child, nn.ReLU):
                setattr(parent, name, SwitchableReLU(None, owner))
    return model


@contextmanager
def guided_backprop(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, and only in the current thread or task, `model` backpropagates guided gradients."""
    if not any(isinstance(m, SwitchableReLU) for m in model.modules()):
        raise ValueError("this model has no switchable ReLUs: build it with make_switchable() first")
    token = _guided_models.set(_guided_models.get() | {id(model)})
    try:
        yield model
    finally:
        _guided_models.reset(token)


@contextmanager
def capture_output(module: nn.Module, leaf: bool = False) -> Iterator[list[torch.Tensor]]:
    """Record `module`'s outputs during the block, for this thread's forward passes only.

    With `leaf`, the output is cut from the graph below it and made a leaf that requires grad, so the
    graph starts there: gradients down to this layer, without recording the layers before it."""
    marker: ContextVar[bool] = ContextVar("fol_capture", default=False)
    token = marker.set(True)
    outputs: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if not marker.get():
            return None
        if leaf:
            output = output.detach().requires_grad_(True)
        outputs.append(output)
        return output if leaf else None

    handle = module.register_forward_hook(hook)
    try:
        yield outputs
    finally:
        handle.remove()
        marker.reset(token)
