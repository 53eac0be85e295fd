"""Running a model partway: forward hooks registered for one block, and the truncated forward.

`hooks` is the one way atlas attaches forward hooks: they are removed when the block
ends, however it ends. A hook may raise `Reached` to stop the forward pass once it
has what it came for; `activations` does that at the deepest layer asked for, so
early-layer units cost a fraction of the network. `activations` is also the one
place outputs are brought to a common shape: each passes through its layer's
layout (`atlas.core.layouts`), so callers always see `[B, C, H, W]` maps (patch
tokens on their grid, prefix tokens dropped) or `[B, C]` vectors.
"""

from __future__ import annotations

import torch

from ..core.errors import AtlasError
from . import device as devices
from .classifier import OUTPUT, Model
from .hooks import Hook, Reached, hooks

def activations(model: Model, x: torch.Tensor, layer_names: set[str]) -> dict[str, torch.Tensor]:
    """Outputs of `layer_names` for input `x` as maps `[B, C, H, W]` or vectors `[B, C]`,
    stopping the forward pass after the deepest. A model that cannot run on `x`
    (a size its input rule forbids) is an AtlasError naming the rule."""
    layers = [model.layer(name) for name in layer_names]
    layout = {layer.name: layer.layout for layer in layers}
    deepest = max(layers, key=lambda l: l.position).name
    modules = dict(model.module.named_modules())
    found: dict[str, torch.Tensor] = {}

    def keep(name: str) -> Hook:
        def hook(_module, _inputs, output):
            found[name] = layout[name].to_maps(output)
            if name == deepest and len(found) == len(layers):
                raise Reached
        return hook

    try:
        with hooks((modules[name], keep(name)) for name in layer_names if name != OUTPUT):
            output = model.module(x)
        if OUTPUT in layer_names:
            found[OUTPUT] = output if isinstance(output, torch.Tensor) else output.logits
    except Reached:
        pass
    except (RuntimeError, AssertionError, ValueError) as err:
        if devices.is_out_of_memory(err):
            raise  # the render loop halves the batch
        reason = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise AtlasError(f"{model.name} does not run on {x.shape[-2]}x{x.shape[-1]} inputs (it takes "
                         f"{model.spec.rule}): {reason}") from None
    return found
