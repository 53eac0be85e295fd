"""Connections between units: expanded weights between rendered layers, computed once.

For a pair of layers (source before target), the expanded weight from source
channel a to target channel b is the gradient of b's activation at the centre
of its map with respect to a's map, taken through a linearized copy of the
network: every activation function becomes the identity, max-pooling becomes
average pooling, and batch norm (affine in eval mode) is kept, which is the
same as folding it into the convolutions (Olah et al., "Visualizing Weights",
Distill 2020). The copy is linear, so the gradient does not depend on the input:
it is exact across residual, bottleneck and depthwise blocks, and for two
directly connected convolutions it is the kernel itself. Units are ranked by
the L2 norm of that spatial pattern; its sum says whether a excites or inhibits b.

One pass serves every target channel of a pair: the network runs once up to the
source layer, whose output is then broadcast to one row per target channel plus
a free perturbation of each row; one backward pass gives every row its channel's
weights. `atlas.connections` decides which pairs a build needs and caches
each (`atlas.store.circuits`).
"""

from __future__ import annotations

import contextlib
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..core import layouts
from ..model.classifier import OUTPUT, Model
from ..model.hooks import Reached, hooks
from ..store.circuits import Pair

MAX_WINDOW = 7      # side of the stored spatial pattern, in source-map pixels
MIN_MAP = 7         # the pair is probed at the smallest input whose maps are at least this wide
PROBE_SIDES = (16, 24, 32, 48, 64, 96, 128, 160, 192, 224, 256, 320)
# Activation functions the linearized copy replaces by the identity. Multiplicative
# gates (squeeze-and-excitation) are not linear in any simple way and stay as they are.
ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.PReLU)


# The same activations called as functions (torch.relu(x) in a forward), made the identity
# while the linearized copy runs.
FUNCTIONS = ((torch, ("relu",)), (F, ("relu", "relu6", "gelu", "silu", "hardswish", "leaky_relu", "elu", "mish")),
             (torch.Tensor, ("relu",)))


@contextlib.contextmanager
def linear_functions():
    """Within the block, functional activations return their input unchanged."""
    saved = [(owner, name, getattr(owner, name)) for owner, names in FUNCTIONS for name in names]
    try:
        for owner, name, _ in saved:
            setattr(owner, name, lambda x, *args, **kwargs: x)
        yield
    finally:
        for owner, name, function in saved:
            setattr(owner, name, function)


def linearized(module: nn.Module) -> nn.Module:
    """A copy of `module` that is linear in its input (see the module docstring)."""
    linear = copy.deepcopy(module)
    for parent in list(linear.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, ACTIVATIONS):
                setattr(parent, name, nn.Identity())
            elif isinstance(child, nn.MaxPool2d):
                setattr(parent, name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                   ceil_mode=child.ceil_mode, count_include_pad=False))
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(parent, name, nn.AdaptiveAvgPool2d(child.output_size))
    linear.eval()
    linear.requires_grad_(False)
    return linear


def expanded_weights(model: Model, net: nn.Module, source: str, target: str, *, device: torch.device,
                     chunk: int = 64, stride: dict[str, float] | None = None) -> Pair:
    """The expanded weights from every channel of `source` to every channel of `target`
    through `net` (a `linearized` copy of the model's module)."""
    start = time.perf_counter()
    size = runnable_size(model, net, probe_size(model, source, target,
                                                stride if stride is not None else strides(model, net, device)), device)
    x = model_input(model, size, device)
    modules = dict(net.named_modules())
    channels = model.layer(target).channels
    norms, totals, heats, box = [], [], [], None
    widen = True
    for first in range(0, channels, chunk):
        rows = min(chunk, channels - first)
        try:
            grad = _gradients(net, modules, x if widen else x.expand(rows, -1, -1, -1), source, target, first, rows)
        except RuntimeError:
            if not widen:
                raise
            # A forward that reshapes by its input's batch size (EfficientNet-Lite's head)
            # cannot take a batch that grows mid-way: run every row from the input instead.
            widen = False
            grad = _gradients(net, modules, x.expand(rows, -1, -1, -1), source, target, first, rows)
        if box is None:
            box = _window(grad) if model.layer(target).layout.spatial else None
        flat = grad.flatten(2)
        norms.append(flat.norm(dim=2).cpu())
        totals.append(flat.sum(dim=2).cpu())
        if box is not None:
            top, left, side = box
            heats.append(grad[:, :, top:top + side, left:left + side].to(torch.float16).cpu())
    norm, total = torch.cat(norms).numpy(), torch.cat(totals).numpy()
    heat = torch.cat(heats).numpy() if heats else np.zeros((*norm.shape, 0, 0), np.float16)
    return Pair(source, target, norm, total, heat, seconds=time.perf_counter() - start, size=size,
                model=model.name, fingerprint=model.fingerprint)


def _gradients(net, modules, x, source, target, first, rows) -> torch.Tensor:
    """[rows, source channels, H, W]: the gradient of target channels first..first+rows-1
    (at the centre of their map) with respect to the source map."""
    delta: list[torch.Tensor] = []
    found: dict[str, torch.Tensor] = {}

    def widen(_module, _inputs, output):
        # Everything before the source ran once (or once per row, when the input has a row
        # per target channel); from here on, one row per target channel.
        free = torch.zeros((rows, *output.shape[1:]), device=output.device, requires_grad=True)
        delta.append(free)
        return output.expand(rows, *output.shape[1:]) + free

    def capture(_module, _inputs, output):
        found["out"] = output
        raise Reached

    watched = [(modules[source], widen)] + ([(modules[target], capture)] if target != OUTPUT else [])
    try:
        with hooks(watched), torch.enable_grad(), linear_functions():
            result = net(x)
            found["out"] = result if isinstance(result, torch.Tensor) else result.logits
    except Reached:
        pass
    out = found["out"]
    picked = torch.arange(first, first + rows, device=out.device)
    line = torch.arange(rows, device=out.device)
    score = out[line, picked] if out.dim() == 2 else out[line, picked, out.shape[2] // 2, out.shape[3] // 2]
    score.sum().backward()
    return delta[0].grad.float()


def _window(grad: torch.Tensor) -> tuple[int, int, int]:
    """(top, left, side) of the square around the patterns' support, at most MAX_WINDOW wide."""
    energy = grad.pow(2).sum((0, 1))
    support = (energy > energy.max() * 1e-10).nonzero()
    if len(support) == 0:
        return 0, 0, 1
    (y0, x0), (y1, x1) = support.min(0).values.tolist(), support.max(0).values.tolist()
    side = min(MAX_WINDOW, max(y1 - y0, x1 - x0) + 1, energy.shape[0], energy.shape[1])
    weights = energy / energy.sum()
    ys, xs = torch.meshgrid(torch.arange(energy.shape[0], device=grad.device),
                            torch.arange(energy.shape[1], device=grad.device), indexing="ij")
    cy, cx = float((weights * ys).sum()), float((weights * xs).sum())
    top = int(min(max(round(cy - (side - 1) / 2), 0), energy.shape[0] - side))
    left = int(min(max(round(cx - (side - 1) / 2), 0), energy.shape[1] - side))
    return top, left, side


def model_input(model: Model, size: int, device: torch.device) -> torch.Tensor:
    """A blank input: the copy is linear, so the gradient is the same for every input."""
    return torch.zeros(1, 3, size, size, device=device)


def strides(model: Model, net: nn.Module, device: torch.device) -> dict[str, float]:
    """Input pixels per map pixel of every map layer, from one forward pass at the
    evaluation crop (a map's side at input side s is about s / stride)."""
    side = model.spec.rule.model_size(min(model.spec.crop_size, 224))
    modules = dict(net.named_modules())
    found: dict[str, float] = {}
    names = [l.name for l in model.layers if l.layout == layouts.NCHW and l.name in modules]
    watched = [(modules[n], lambda m, i, o, n=n: found.__setitem__(n, side / o.shape[-1])) for n in names]
    with hooks(watched), torch.no_grad(), linear_functions():
        net(model_input(model, side, device))
    return found


def runnable_size(model: Model, net: nn.Module, side: int, device: torch.device) -> int:
    """The smallest probe side from `side` up at which the copy runs at all. A model whose
    padding was fixed for its own input size (EfficientNet-Lite's static "same" padding)
    fails at small inputs, where a deep map becomes smaller than a kernel."""
    sides = [s for s in PROBE_SIDES if s > side]
    for candidate in [side, *sides]:
        size = model.spec.rule.model_size(candidate)
        try:
            with torch.no_grad(), linear_functions():
                net(model_input(model, size, device))
            return size
        except RuntimeError:
            continue
    return model.spec.rule.model_size(PROBE_SIDES[-1])


def probe_size(model: Model, source: str, target: str, stride: dict[str, float]) -> int:
    """The smallest input side (the model's rule allowing) whose source and target maps
    are at least MIN_MAP wide, so the centre's pattern is not cut by the border; for a
    flat target (class logits, whose pattern is not stored: pooling spreads it evenly),
    the smallest that gives the source a map at all."""
    flat = target == OUTPUT or not model.layer(target).layout.spatial
    wanted = stride.get(source, 1) if flat else MIN_MAP * max(stride.get(source, 1), stride.get(target, 1))
    side = next((s for s in PROBE_SIDES if s >= wanted), PROBE_SIDES[-1])
    return model.spec.rule.model_size(side)
