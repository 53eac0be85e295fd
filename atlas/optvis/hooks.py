"""Reading layer outputs cheaply, and keeping silent units trainable.

`activations` runs the model only as far as the deepest layer asked for: a hook
on that layer raises once it has its output, so early-layer units cost a
fraction of the network. It is also the one place outputs are brought to a
common shape: each is passed through its layer's layout (layouts.py), so
callers always see `[B, C, H, W]` maps (patch tokens on their grid, prefix
tokens dropped) or `[B, C]` vectors. `redirected_relus` is Lucid's trick for dead units:
where a ReLU blocks every gradient of an image, let through the part that
pushes its input up, so units silent on the initial noise can wake up.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from .. import device as devices
from ..errors import AtlasError
from ..models import OUTPUT, Model


class _Reached(Exception):
    """Raised from a hook once the deepest needed layer has run."""


def activations(model: Model, x: torch.Tensor, layer_names: set[str]) -> dict[str, torch.Tensor]:
    """Outputs of `layer_names` for input `x` as maps `[B, C, H, W]` or vectors `[B, C]`,
    stopping the forward pass after the deepest. A model that cannot run on `x`
    (a size its input rule forbids) is an AtlasError naming the rule."""
    layers = [model.layer(name) for name in layer_names]
    layout = {layer.name: layer.layout for layer in layers}
    deepest = max(layers, key=lambda l: l.position).name
    modules = dict(model.module.named_modules())
    found: dict[str, torch.Tensor] = {}

    def keep(name: str):
        def hook(_module, _inputs, output):
            found[name] = layout[name].to_maps(output)
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
    except (RuntimeError, AssertionError, ValueError) as err:
        if devices.is_out_of_memory(err):
            raise  # render() halves the batch
        reason = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise AtlasError(f"{model.name} does not run on {x.shape[-2]}x{x.shape[-1]} inputs (it takes "
                         f"{model.spec.rule}): {reason}") from None
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
        return redirected_relu_grad(grad, x, ctx.upper), None


def redirected_relu_grad(grad: torch.Tensor, x: torch.Tensor, upper: float | None) -> torch.Tensor:
    """A ReLU's (or ReLU6's) gradient, except for images it blocks entirely: those
    get the part of `grad` that would raise the input where it is off.

    Built from the native ReLU backward and arithmetic only: elementwise
    comparisons and `where` on bf16 channels-last maps cost about ten times a
    native backward on CPU, and made a redirected step twice a plain one."""
    if upper is None:
        relu_grad = torch.ops.aten.threshold_backward(grad, x, 0)
    else:
        relu_grad = torch.ops.aten.hardtanh_backward(grad, x, 0.0, upper)
    blocked = relu_grad.abs().amax(dim=tuple(range(1, grad.dim()))) == 0
    # Rare (units silent at the start), so the common case stops here; on CUDA the
    # test reads one flag back per ReLU, and only during the redirected steps.
    if blocked.any():
        g, on = grad[blocked], x[blocked]
        # Off (x <= 0): only descent directions that raise x (g < 0) pass; on: all of g.
        relu_grad[blocked] = g.clamp(max=0) + torch.ops.aten.threshold_backward(g.clamp(min=0), on, 0)
    return relu_grad


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
