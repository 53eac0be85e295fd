"""What atlas reads off a classifier module: its layers, their layouts, and a fingerprint of its weights.

`prepare` readies a module (eval mode, frozen weights, no in-place activations);
`catalog` finds the layers with a per-channel output in one forward pass on a
blank image; `fingerprint` hashes the weights' content for the cache key.
"""

from __future__ import annotations

import hashlib

import torch
from torch import nn

from ..core import layouts
from ..core.errors import AtlasError
from ..core.layouts import Layout
from .classifier import OUTPUT, Layer
from .families import default_layers, family_of
from .hooks import hooks
from .spec import ModelSpec


def prepare(module: nn.Module) -> nn.Module:
    """Eval mode, frozen weights, and no in-place activations.

    In-place activations overwrite the tensor a layer returned (VGG's conv
    output is clobbered by the following ReLU(inplace=True)), so a hook would
    read the post-ReLU value instead of the layer's own output.
    """
    module.eval()
    module.requires_grad_(False)
    for m in module.modules():
        if getattr(m, "inplace", False) is True:
            m.inplace = False
    return module


def fingerprint(module: nn.Module) -> str:
    """A hash of the weights' content: identical weights, identical fingerprint."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().to("cpu").contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def catalog(module: nn.Module, spec: ModelSpec | None = None) -> tuple[tuple[Layer, ...], str]:
    """Layers with a per-channel output, in forward order, and the logits layer.

    Found by running one forward pass on a blank image (at the evaluation crop,
    at most 224 px, as the input rule allows) and watching every module; works
    on the `meta` device too, where it costs no arithmetic. A module called more
    than once per pass (a shared ReLU) has no single output to visualize and is
    left out, as are outputs no layout explains (attention internals).
    """
    spec = spec or ModelSpec()
    size = spec.rule.model_size(min(spec.crop_size, 224))
    names = {m: n for n, m in module.named_modules() if n}
    seen: dict[str, tuple[nn.Module, torch.Tensor, Layout]] = {}
    calls: dict[str, int] = {}
    previous: list[Layout | None] = [None]  # the last map layout, for channels-last activations

    def watch(m, _inputs, output):
        name = names[m]
        calls[name] = calls.get(name, 0) + 1
        layout = layouts.detect(m, output, 1, previous[0])
        if layout is not None and name not in seen:
            seen[name] = (m, output, layout)
            if layout in (layouts.NCHW, layouts.NHWC):
                previous[0] = layout

    try:
        with hooks((m, watch) for m in names), torch.no_grad():
            result = module(torch.zeros(1, 3, size, size, device=_device_of(module)))
    except Exception as err:
        raise AtlasError(f"the model does not run on a {size}x{size} image ({spec.rule} allowed): "
                         f"{reason(err)}") from None
    logits = result if isinstance(result, torch.Tensor) else getattr(result, "logits", None)

    layers, output_layer = [], OUTPUT
    for position, (name, (m, out, layout)) in enumerate(seen.items()):
        if calls[name] > 1:
            continue
        kind = ("conv" if isinstance(m, nn.Conv2d) else
                "linear" if isinstance(m, nn.Linear) and layout == layouts.FLAT else "other")
        layers.append(Layer(name, type(m).__name__, layout.channels(out), kind, position, layout))
        if logits is not None and not list(m.children()) and _same(out, logits):
            output_layer = name
    if output_layer == OUTPUT and logits is not None:
        layers.append(Layer(OUTPUT, "output", int(logits.shape[1]), "linear", len(seen), layouts.FLAT))
    defaults = default_layers(family_of(module), module, layers) - {output_layer}
    layers = [Layer(**{**l.__dict__, "default": l.name in defaults}) for l in layers]
    return tuple(layers), output_layer


def _same(out: torch.Tensor, logits: torch.Tensor) -> bool:
    """Whether a layer's output is the model's logits (by identity on `meta`, where values are unknown)."""
    if out is logits:
        return True
    return out.shape == logits.shape and not out.is_meta and torch.equal(out, logits)


def reason(err: BaseException) -> str:
    return (str(err).splitlines() or [type(err).__name__])[0][:200]



def _device_of(module: nn.Module) -> torch.device:
    parameter = next(module.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")
