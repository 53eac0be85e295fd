"""Dataset examples: the natural images that excite each unit most.

A consumer of the shared dataset pass (`atlas.data.stream`) keeps, for every channel
of the chosen layers, the top-k images by the same objective the visualization
maximizes (a channel's mean activation, a class logit), with the position of
the channel's strongest response; a crop of its receptive field there is
stored at the end. Memory stays bounded: a running top-k per layer, never all
activations. Unreadable images are skipped and counted.

Results are cached per layer under `<cache>/examples/`, keyed by the dataset
(file names, sizes, mtimes), the model and its weights, and the settings:
adding an image invalidates them, running again does not recompute. Crops are
stored once each under `<cache>/examples/crops/`, named by their content: many
channels (and layers) share the same image and box, and store it only once.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import photos, sources
from ..data.sources import Source
from ..model.classifier import Model, normalize
from ..model.forward import activations
from ..store import examples as stored
from ..store.examples import Example, LayerExamples

MIN_CROP = 32    # px: the smallest receptive field still worth looking at
CROP_SIDE = 112  # px of the stored crops (JPEG)


def preprocess(path: Path, model: Model) -> torch.Tensor | None:
    """The model's evaluation view of the image at `path`, [3, S, S] in [0, 1]; None when unreadable."""
    try:
        return photos.as_tensor(photos.model_view(path, *sources.view_side(model)))
    except photos.UnreadableImage:
        return None


def receptive_field(model: Model, layer: str, size: int, device: torch.device) -> int:
    """Side in pixels of the input region that reaches the centre unit of `layer`.

    Measured, not derived: backpropagate from the centre position and see how
    far a non-zero gradient spreads (architectures differ too much to tabulate).
    """
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    out = activations(model, normalize(model, x), {layer})[layer]
    if out.dim() != 4:
        return size
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    reached = x.grad.abs().sum(1)[0] > 0
    rows, cols = reached.any(1).nonzero(), reached.any(0).nonzero()
    if len(rows) == 0:
        return size
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, MIN_CROP))


class TopExamples:
    """Consumer of the dataset pass: a running top-k of images per channel of each layer,
    by the objective the visualization maximizes (a channel's mean, a logit), with
    where in the map each image excites the channel most. State: [C, k] per layer."""

    def __init__(self, layers: list[str], k: int):
        self.layers = frozenset(layers)
        self.k = k
        self.best: dict[str, tuple | None] = {layer: None for layer in layers}
        self.grids: dict[str, tuple[int, int]] = {}

    def update(self, batch) -> None:
        for layer in self.layers:
            out = batch.acts[layer]
            if out.dim() == 4:
                self.grids[layer] = tuple(out.shape[2:])
                flat = out.flatten(2)
                values, where = flat.mean(2), flat.argmax(2)
                positions = torch.stack([where // out.shape[3], where % out.shape[3]], -1)
            else:
                values, positions = out, torch.zeros(*out.shape, 2, dtype=torch.long, device=out.device)
            self.best[layer] = merge_top(self.best[layer], values.T, batch.ids.expand(values.shape[1], -1),
                                          positions.transpose(0, 1), k=self.k)


def merge_top(current, values, ids, *payloads, k):
    """Running top-k along dim 1 of per-unit candidates: `values` and `ids` [U, n], each
    payload [U, n, ...] (a position, a map) kept beside its value. `current` is the last
    result, (values, ids, *payloads), or None."""
    candidates = (values, ids, *payloads)
    if current is not None:
        candidates = tuple(torch.cat([old, new], 1) for old, new in zip(current, candidates))
    pick = candidates[0].topk(min(k, candidates[0].shape[1]), dim=1).indices
    return tuple(t.gather(1, pick.view(*pick.shape, *[1] * (t.dim() - 2)).expand(*pick.shape, *t.shape[2:]))
                 for t in candidates)


def store_layer(model: Model, source: Source, root: Path, *, key: str, layer: str, top: TopExamples, images: int,
                device) -> dict:
    """Crop and store one layer's top examples (each photo decoded once); the stored result."""
    side, channels = crop_examples(model, source, layer, top.best[layer], grid=top.grids.get(layer), device=device,
                                   store_crop=lambda data: stored.store_crop(root, data))
    return stored.store(root, key, LayerExamples(
        model.name, model.fingerprint, layer, str(source.root), source.fingerprint(), images,
        int(top.best[layer][0].shape[1]), model.input_size, side, channels))


def crop_examples(model: Model, source: Source, layer: str, best: tuple, *, grid: tuple[int, int] | None, device,
                  store_crop) -> tuple[int, list[list[Example]]]:
    """The receptive-field side and, per unit, its top examples with their crops stored by
    `store_crop(jpeg bytes) -> name`, from a running top-k `best` (values, ids, positions
    [units, k]). Each photo is decoded once, each (photo, box) cropped once."""
    values, ids, positions = (t.cpu() for t in best)
    size = model.input_size
    side = receptive_field(model, layer, size, device) if grid else size
    views: dict[int, np.ndarray] = {}   # units share their top images: decode each once
    crops: dict[tuple, str] = {}        # (image, box) -> stored crop: units share crops too
    units = []
    for unit in range(values.shape[0]):
        examples = []
        for rank in range(values.shape[1]):
            image_id = int(ids[unit, rank])
            box = _box(positions[unit, rank].tolist(), grid, side, size)
            if (image_id, box) not in crops:
                if image_id not in views:
                    views[image_id] = source.load(image_id).pixels
                crop = views[image_id][box[1]:box[3], box[0]:box[2]]
                crops[(image_id, box)] = store_crop(_jpeg(crop))
            examples.append(Example(source.name(image_id), float(values[unit, rank]), box, crops[(image_id, box)]))
        units.append(examples)
    return side, units


def _box(position, grid, side, size) -> tuple[int, int, int, int]:
    """A `side`-pixel square around the input point under grid cell `position`, inside the image."""
    if grid is None:
        return 0, 0, size, size
    cy = (position[0] + 0.5) * size / grid[0]
    cx = (position[1] + 0.5) * size / grid[1]
    left = int(min(max(cx - side / 2, 0), size - side))
    top = int(min(max(cy - side / 2, 0), size - side))
    return left, top, left + side, top + side


def _jpeg(crop: np.ndarray) -> bytes:
    image = Image.fromarray(crop).resize((CROP_SIDE, CROP_SIDE), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()
