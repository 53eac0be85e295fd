"""The dissection's consumers of the dataset pass: quantile sketches, then IoU counts.

For each image, a unit's *region* is its activation map, resampled bilinearly to
the mask resolution, above the unit's threshold (its dataset-wide upper quantile).
Summed over the dataset, per (unit, concept):

    I[u, k]  pixels in both the region and concept k's mask
    A[u, c]  region pixels in the images that carry labels of category c
    G[k]     pixels of concept k

and IoU = I / (A[cat(k)] + G - I) (`atlas.store.dissection.iou`). A whole-image
label (scene, texture) covers every pixel of its image. Counts are int64 on the
device and add, so shards merge exactly; memory is [units, concepts] per layer,
whatever the dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..data.stream import Batch
from . import confirm, sketch

# Active maps resampled at once: [CHUNK, P] floats bound the memory of a batch's regions.
CHUNK = 2048


@dataclass
class Counts:
    intersection: torch.Tensor   # [C, K] int64
    activation: torch.Tensor     # [C, categories] int64
    ground: torch.Tensor         # [K] int64
    images: int = 0

    @classmethod
    def zeros(cls, units: int, concepts: int, categories: int, device=None) -> "Counts":
        return cls(torch.zeros(units, concepts, dtype=torch.int64, device=device),
                   torch.zeros(units, categories, dtype=torch.int64, device=device),
                   torch.zeros(concepts, dtype=torch.int64, device=device))


@dataclass
class Labels:
    """One batch's concept labels on the device, padded to a common number of maps."""
    maps: torch.Tensor        # [B, M, P] long: concept index per pixel, -1 unlabelled (or a padding map)
    labelled: torch.Tensor    # [B, categories] long (0/1): the image carries labels of that category
    whole: torch.Tensor       # [B, W] long: whole-image concepts, -1 padding
    ground: torch.Tensor      # [K] long: concept pixels of the whole batch (its part of G)

    @classmethod
    def of(cls, items, category_of: list[int], categories: int, *, side: int, device) -> "Labels":
        pixels, count, concepts = side * side, len(items), len(category_of)
        depth = max([len(item.maps) if item.maps is not None else 0 for item in items] + [1])
        width = max([len(item.whole) for item in items] + [1])
        maps = torch.full((count, depth, pixels), -1, dtype=torch.long)
        whole = torch.full((count, width), -1, dtype=torch.long)
        labelled = torch.zeros(count, categories, dtype=torch.long)
        for b, item in enumerate(items):
            if item.maps is not None and len(item.maps):
                maps[b, :len(item.maps)] = torch.from_numpy(item.maps.reshape(len(item.maps), -1))
            whole[b, :len(item.whole)] = torch.tensor(item.whole, dtype=torch.long)
            for c in list(item.map_categories) + [category_of[k] for k in item.whole]:
                labelled[b, c] = 1
        ground = torch.bincount(maps[maps >= 0], minlength=concepts)
        ground += torch.bincount(whole[whole >= 0], minlength=concepts) * pixels
        return cls(maps.to(device), labelled.to(device), whole.to(device), ground.to(device))


def regions(maps: torch.Tensor, thresholds: torch.Tensor, side: int) -> torch.Tensor:
    """[N, side * side] bool: each map [N, h, w] resampled bilinearly to the mask side,
    above its own threshold [N]."""
    big = F.interpolate(maps[:, None].float(), size=(side, side), mode="bilinear", align_corners=False)
    return (big[:, 0] > thresholds.view(-1, 1, 1)).flatten(1)


def count_batch(counts: Counts, acts: torch.Tensor, thresholds: torch.Tensor, labels: Labels, *, side: int) -> None:
    """Add one batch of one layer (`acts` [B, C, h, w], or [B, C] for a flat layer) to `counts`.

    Bilinear resampling never exceeds a map's own maximum, so a unit whose map stays at
    or below its threshold has an empty region: only the other (image, unit) pairs are
    resampled, and only their region pixels are looked up in the masks. The counts are
    exactly those of resampling and comparing every map."""
    concepts = counts.intersection.shape[1]
    counts.ground += labels.ground
    counts.images += acts.shape[0]
    if acts.dim() == 2:
        acts = acts[:, :, None, None]
    images, units = (acts.amax(dim=(2, 3)) > thresholds).nonzero(as_tuple=True)
    for first in range(0, len(images), CHUNK):
        b, u = images[first:first + CHUNK], units[first:first + CHUNK]
        pair, pixel = regions(acts[b, u], thresholds[u], side).nonzero(as_tuple=True)
        area = torch.bincount(pair, minlength=len(b))                                  # [n] region pixels
        for m in range(labels.maps.shape[1]):
            label = labels.maps[b[pair], m, pixel]
            hit = label >= 0
            inside = torch.bincount(pair[hit] * concepts + label[hit], minlength=len(b) * concepts)
            counts.intersection.index_add_(0, u, inside.view(len(b), concepts))
        for w in range(labels.whole.shape[1]):
            concept = labels.whole[b, w]
            keep = concept >= 0
            counts.intersection.index_put_((u[keep], concept[keep]), area[keep], accumulate=True)
        counts.activation.index_add_(0, u, area[:, None] * labels.labelled[b])


class IoUCounter:
    """IoU counts for every unit of some layers, given their thresholds, kept apart for
    each half of the images (`confirm.half_of`): `counts[layer]` is [half 0, half 1]."""

    def __init__(self, thresholds: dict[str, torch.Tensor], concepts, side: int, device):
        self.layers = frozenset(thresholds)
        self.thresholds = {layer: t.to(device).float() for layer, t in thresholds.items()}
        self.side = side
        self.category_of = list(concepts.category_of)
        self.categories = len(concepts.categories)
        self.counts = {layer: [Counts.zeros(len(t), len(concepts.names), self.categories, device) for _ in range(2)]
                       for layer, t in self.thresholds.items()}

    def update(self, batch: Batch) -> None:
        halves = confirm.half_of(batch.ids.tolist())
        for half in (0, 1):
            rows = np.flatnonzero(halves == half)
            if not len(rows):
                continue
            items = [batch.items[r] for r in rows]
            labels = Labels.of(items, self.category_of, self.categories, side=self.side, device=batch.images.device)
            index = torch.from_numpy(rows).to(batch.images.device)
            for layer in self.layers:
                count_batch(self.counts[layer][half], batch.acts[layer].index_select(0, index), self.thresholds[layer],
                            labels, side=self.side)


class QuantileCounter:
    """A quantile sketch (`sketch`) per unit of some layers."""

    def __init__(self, layers: dict[str, int], device):
        self.layers = frozenset(layers)
        self.counts = {layer: sketch.new_counts(units, device) for layer, units in layers.items()}
        self.images = 0

    def update(self, batch: Batch) -> None:
        for layer in self.layers:
            sketch.add(self.counts[layer], batch.acts[layer])
        self.images += len(batch.ids)
