"""Reading layer outputs cheaply, and keeping silent units trainable.

`activations` runs the model only as far as the deepest layer asked for: a hook
on that layer raises once it has its output, so early-layer units cost a
fraction of the network. `redirected_relus` is Lucid's trick for dead units:
where a ReLU blocks every gradient of an image, let through the part that
pushes its input up, so units silent on the initial noise can wake up.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..models import OUTPUT, Model


class _Reached(Exception):
    """Raised from a hook once the deepest needed layer has run."""


def activations(model: Model, x: torch.Tensor, layer_names: set[str]) -> dict[str, torch.Tensor]:
    """Outputs of `layer_names` for input `x`, stopping the forward pass after the deepest."""
    layers = [model.layer(name) for name in layer_names]
    deepest = max(layers, key=lambda l: l.position).name
    modules = dict(model.module.named_modules())
    found: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _inputs, output):
            found[name] = output
            if name == deepest and len(found) == len(layers):
                raise _Reached
        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in layer_names if name != OUTPUT]
    try:
        output = model.module(x)
        if OUTPUT in layer_names:
            found[OUTPUT] = output if isinstance(output, torch.Tensor) else output.logits
    except _Reached:
        pass
    finally:
        for handle in handles:
            handle.remove()
    return found


class _RedirectedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(0, upper) if upper is not None else x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        active = x > 0 if ctx.upper is None else (x > 0) & (x < ctx.upper)
        relu_grad = grad * active
        # Where the ReLU is off, still pass a gradient that would raise its input.
        redirected = torch.where((x <= 0) & (grad > 0), torch.zeros_like(grad), grad)
        flat = relu_grad.flatten(1).abs().amax(1)
        blocked = (flat == 0).view(-1, *([1] * (grad.dim() - 1)))
        return torch.where(blocked, redirected, relu_grad), None


@contextlib.contextmanager
def redirected_relus(module: nn.Module, enabled: bool = True):
    """Within the block, ReLU/ReLU6 modules of `module` redirect blocked gradients per image."""
    if not enabled:
        yield
        return

    def hook(m, inputs, _output):
        return _RedirectedReLU.apply(inputs[0], 6.0 if isinstance(m, nn.ReLU6) else None)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, (nn.ReLU, nn.ReLU6))]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
