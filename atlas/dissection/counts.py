"""IoU counts of one layer's units against a concept dataset, accumulated on the device.

For each image, a unit's *region* is its activation map, resampled bilinearly to
the mask resolution, above the unit's threshold (its dataset-wide upper quantile).
Summed over the dataset, per (unit, concept):

    I[u, k]  pixels in both the region and concept k's mask
    A[u, c]  region pixels in the images that carry labels of category c
    G[k]     pixels of concept k

and IoU = I / (A[cat(k)] + G - I) (`atlas.store.dissection.iou`). A whole-image
label (scene, texture) covers every pixel of its image. Counts are int64 and add,
so shards merge exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..dataset import Batch
from . import sketch


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


def regions(maps: torch.Tensor, thresholds: torch.Tensor, side: int) -> torch.Tensor:
    """[B, C, side*side] float 0/1: each unit's map resampled to the mask side, above its threshold."""
    if maps.dim() == 2:   # a flat layer: one value per unit covers the whole image
        return (maps > thresholds).float()[:, :, None].expand(-1, -1, side * side)
    big = F.interpolate(maps.float(), size=(side, side), mode="bilinear", align_corners=False)
    return (big > thresholds.view(1, -1, 1, 1)).flatten(2).float()


def add_image(counts: Counts, region: torch.Tensor, maps: torch.Tensor, map_categories, whole, category_of) -> None:
    """Count one image: `region` [C, P] (0/1), `maps` [M, P] concept index per pixel (-1: none),
    each map of category `map_categories[m]`, and whole-image concepts `whole`."""
    pixels = region.shape[1]
    labelled = set(int(c) for c in map_categories) | {int(category_of[k]) for k in whole}
    if not labelled:
        return
    area = region.sum(1)                                         # [C], exact in float32 (P < 2^24)
    concepts, masks = [], []
    for m in range(maps.shape[0]):
        present = torch.unique(maps[m])
        present = present[present >= 0]
        if len(present):
            concepts.append(present)
            masks.append((maps[m][None, :] == present[:, None]).float())   # [k, P]
    if concepts:
        ids = torch.cat(concepts)
        onehot = torch.cat(masks)
        counts.intersection.index_add_(1, ids, (region @ onehot.T).round().long())
        counts.ground.index_add_(0, ids, onehot.sum(1).round().long())
    if whole:
        ids = torch.tensor(list(whole), device=region.device)
        counts.intersection.index_add_(1, ids, area.round().long()[:, None].expand(-1, len(ids)).contiguous())
        counts.ground.index_add_(0, ids, torch.full((len(ids),), pixels, dtype=torch.int64, device=region.device))
    cats = torch.tensor(sorted(labelled), device=region.device)
    counts.activation.index_add_(1, cats, area.round().long()[:, None].expand(-1, len(cats)).contiguous())
    counts.images += 1


class IoUCounter:
    """Consumer of the dataset pass: IoU counts for every unit of some layers, given
    their thresholds. Memory: [units, concepts] counts per layer, whatever the dataset."""

    def __init__(self, thresholds: dict[str, torch.Tensor], concepts, side: int, device):
        self.layers = frozenset(thresholds)
        self.thresholds = {layer: t.to(device) for layer, t in thresholds.items()}
        self.side = side
        self.category_of = list(concepts.category_of)
        self.counts = {layer: Counts.zeros(len(t), len(concepts.names), len(concepts.categories), device)
                       for layer, t in self.thresholds.items()}

    def update(self, batch: Batch) -> None:
        device = batch.images.device
        maps = [torch.from_numpy(item.maps.reshape(len(item.maps), -1)).to(device).long()
                if item.maps is not None else torch.zeros(0, self.side * self.side, dtype=torch.long, device=device)
                for item in batch.items]
        for layer in self.layers:
            acts = batch.acts[layer]
            for b, item in enumerate(batch.items):   # one image at a time: a [C, P] region, not [B, C, P]
                region = regions(acts[b:b + 1], self.thresholds[layer], self.side)[0]
                add_image(self.counts[layer], region, maps[b], item.map_categories, item.whole, self.category_of)


class QuantileCounter:
    """Consumer of the dataset pass: a quantile sketch (`sketch`) per unit of some layers."""

    def __init__(self, layers: dict[str, int], device):
        self.layers = frozenset(layers)
        self.counts = {layer: sketch.new_counts(units, device) for layer, units in layers.items()}
        self.images = 0

    def update(self, batch: Batch) -> None:
        for layer in self.layers:
            sketch.add(self.counts[layer], batch.acts[layer])
        self.images += len(batch.ids)
