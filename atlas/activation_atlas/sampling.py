"""Activation vectors and their attributions, sampled from real photos in the dataset pass.

Each chosen photo gives `per_image` positions, drawn from a generator seeded by the
photo's index alone: the same photo gives the same positions in every layer and
every run, whichever photos share its batch. At each position a layer's activation
vector h is kept, with its attribution to every class c, h . dlogit_c/dh (Carter et
al. 2019): how much that vector pushes each logit.

All classes at once: the attribution is the derivative of the logits in the
direction h, one forward-mode (jvp) pass with the tangent h at that position and
zero elsewhere. A hook on the layer widens the batch to one row per sampled
position, so the layers before it run once; a model that reshapes by its input's
batch size (EfficientNet-Lite's head) gets one row per position from the input
instead. Max pooling passes tangents as average pooling does (Lucid's relaxed
max-pool gradient), so a sample's attribution does not hinge on one winning pixel.
"""

from __future__ import annotations

import contextlib
import zlib

import numpy as np
import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn

from ..model.classifier import Model
from ..model.hooks import hooks


def positions(index: int, per_image: int, seed: int) -> np.ndarray:
    """[per_image, 2] (y, x) in [0, 1): the sampled positions of photo `index`."""
    rng = np.random.default_rng(zlib.crc32(f"atlas|{seed}|{index}".encode()))
    return rng.random((per_image, 2))


def grid_cells(where: np.ndarray, height: int, width: int) -> np.ndarray:
    """Normalized (y, x) positions -> integer (row, column) of a height x width map."""
    cells = np.floor(where * np.array([height, width])).astype(np.int64)
    return np.minimum(cells, np.array([height - 1, width - 1]))


@contextlib.contextmanager
def relaxed_max_pooling(module: nn.Module):
    """Within the block, max pooling passes forward-mode tangents as average pooling would."""
    def hook(m, inputs, output):
        tangent = fwAD.unpack_dual(inputs[0]).tangent
        if tangent is None:
            return None
        primal = fwAD.unpack_dual(output).primal
        if isinstance(m, nn.MaxPool2d):
            relaxed = F.avg_pool2d(tangent, m.kernel_size, m.stride, m.padding, m.ceil_mode, count_include_pad=False)
        else:
            relaxed = F.adaptive_avg_pool2d(tangent, m.output_size)
        return fwAD.make_dual(primal, relaxed)

    with hooks((m, hook) for m in module.modules() if isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d))):
        yield


@contextlib.contextmanager
def unfused_attention():
    """Within the block, attention runs its plain path: neither the fused kernel of
    `nn.MultiheadAttention` (torch's "fast path", taken in eval mode) nor the flash and
    memory-efficient kernels of scaled dot-product attention have a forward-mode
    derivative, so a ViT's attributions need the path made of ordinary operations."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with sdpa_kernel([SDPBackend.MATH]):
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def attributions(model: Model, x: torch.Tensor, layer: str, cells: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors [B, k, C] at `cells` [B, k, 2] (row, column) of `layer`'s map, and their
    attributions [B, k, classes] to every logit, for input batch `x`.

    Always in fp32, whatever the pass's precision: under autocast, forward-mode tangents
    and their primals end up in different dtypes (torch 2.14 on a CPU: "Input type and
    weight type should be the same" at the first convolution after a batch norm)."""
    layout = model.layer(layer).layout
    module = dict(model.module.named_modules())[layer]
    rows, k = x.shape[0], cells.shape[1]
    found: dict[str, torch.Tensor] = {}

    def tangents(output: torch.Tensor, per_row_input: bool) -> torch.Tensor:
        maps = layout.to_maps(output)
        b, c = maps.shape[:2]
        images = torch.arange(rows, device=maps.device).repeat_interleave(k)
        ys, xs = cells.reshape(-1, 2).to(maps.device).unbind(1)
        source = maps.reshape(rows, k, *maps.shape[1:])[:, 0] if per_row_input else maps
        vectors = source[images, :, ys, xs]                                   # [rows * k, C]
        found["vectors"] = vectors.detach().float()
        tangent = torch.zeros((rows * k, *maps.shape[1:]), device=maps.device, dtype=maps.dtype)
        tangent[torch.arange(rows * k, device=maps.device), :, ys, xs] = vectors
        widened = output if per_row_input else output.repeat_interleave(k, 0)
        return fwAD.make_dual(widened, layout.from_maps(tangent, widened))

    x = x.float()

    def run(per_row_input: bool) -> torch.Tensor:
        with hooks([(module, lambda m, i, out: tangents(out, per_row_input))]), fwAD.dual_level(), \
                torch.no_grad(), relaxed_max_pooling(model.module), unfused_attention():
            out = model.module(x.repeat_interleave(k, 0) if per_row_input else x)
            out = out if isinstance(out, torch.Tensor) else out.logits
            return fwAD.unpack_dual(out).tangent

    try:
        attributed = run(per_row_input=False)
    except RuntimeError:
        # The forward reshapes by the batch size it was given: widen from the input instead.
        attributed = run(per_row_input=True)
    classes = attributed.shape[-1]
    return found["vectors"].view(rows, k, -1), attributed.float().view(rows, k, classes)


class AtlasSampler:
    """Consumer of the dataset pass: activation vectors and attributions of the chosen
    photos at their seeded positions, per layer. Memory: the samples, never the dataset."""

    def __init__(self, model: Model, layers: list[str], per_image: int, seed: int, chosen: set[int] | None,
                 attribute: bool = True):
        self.model, self.per_image, self.seed, self.chosen = model, per_image, seed, chosen
        self.attribute = attribute
        self.layers = frozenset(layers)
        self.samples: dict[str, dict[str, list]] = {layer: {"vectors": [], "attributions": [], "images": [],
                                                            "where": []} for layer in layers}

    def update(self, batch) -> None:
        ids = batch.ids.tolist()
        keep = [n for n, index in enumerate(ids) if self.chosen is None or index in self.chosen]
        if not keep:
            return
        rows = torch.tensor(keep, device=batch.model_input.device)
        where = np.stack([positions(ids[n], self.per_image, self.seed) for n in keep])    # [b, k, 2]
        x = batch.model_input[rows]
        for layer in self.layers:
            maps = batch.acts[layer]
            cells = torch.from_numpy(grid_cells(where, maps.shape[2], maps.shape[3]))
            if self.attribute:
                vectors, attributed = attributions(self.model, x, layer, cells)
            else:
                ys, xs = cells.reshape(-1, 2).to(maps.device).unbind(1)
                vectors, attributed = maps[rows.repeat_interleave(self.per_image), :, ys, xs], None
            store = self.samples[layer]
            store["vectors"].append(vectors.reshape(-1, vectors.shape[-1]).cpu().half())
            if attributed is not None:
                store["attributions"].append(attributed.reshape(-1, attributed.shape[-1]).cpu().half())
            store["images"].append(torch.tensor([ids[n] for n in keep]).repeat_interleave(self.per_image))
            store["where"].append(torch.from_numpy(where.reshape(-1, 2)).float())

    def arrays(self, layer: str) -> dict[str, np.ndarray]:
        store = self.samples[layer]
        if not store["vectors"]:
            return {}
        found = {name: torch.cat(parts).numpy() for name, parts in store.items() if parts}
        return found
