"""Activation vectors for a dictionary, sampled from real photos in the dataset pass.

Every chosen photo gives its vectors at `positions` seeded places of each layer's map
(all of its positions when `positions` is None), drawn from a generator seeded by the
photo's index alone: the same photo gives the same vectors in every run, shard and
batch. A seeded share of the photos is held out (`held_out`, chosen once every shard's
vectors are in): their vectors only ever measure a dictionary, never train it. Memory is
the sample, never the dataset: `per_photo` spreads the vector budget over every photo,
and `atlas.data.sources.chosen_photos` picks, seeded, as many photos as the budget still allows.
"""

from __future__ import annotations

import zlib

import numpy as np
import torch

MIN_PER_PHOTO = 16   # fewer positions than this from a photo: better fewer photos, each seen more


def held_out(images: np.ndarray, share: float, seed: int) -> np.ndarray:
    """[N] which vectors are held out: those of a seeded choice of `share` of the photos in
    `images` (at least one photo, and never every photo when there are two or more)."""
    photos = np.unique(images)
    count = min(max(1, round(share * len(photos))), max(1, len(photos) - 1))
    rng = np.random.default_rng(zlib.crc32(f"dictionary holdout|{seed}".encode()))
    return np.isin(images, rng.choice(photos, count, replace=False))


def per_photo(photos: int, grid: int, budget: int) -> int | None:
    """Positions sampled per photo: every one (None) when the folder fits the budget, else
    an even share of it, at least MIN_PER_PHOTO (then `sources.chosen_photos` trims the photos)."""
    if photos * grid <= budget:
        return None
    return max(min(MIN_PER_PHOTO, grid), budget // max(1, photos))


def places(index: int, positions: int | None, height: int, width: int, *, seed: int) -> np.ndarray:
    """Flat indices into a height x width map: every position, or `positions` seeded ones."""
    if positions is None or positions >= height * width:
        return np.arange(height * width)
    rng = np.random.default_rng(zlib.crc32(f"dictionary|{seed}|{index}".encode()))
    return np.sort(rng.choice(height * width, positions, replace=False))


class VectorSampler:
    """Consumer of the dataset pass: the activation vectors of the chosen photos, per layer
    (`positions` per photo each), with the photo each came from."""

    def __init__(self, positions: dict[str, int | None], *, seed: int, chosen: dict[str, set[int] | None]):
        self.layers = frozenset(positions)
        self.positions, self.seed, self.chosen = positions, seed, chosen
        self.parts: dict[str, dict[str, list]] = {layer: {"vectors": [], "images": []} for layer in positions}

    def update(self, batch) -> None:
        ids = batch.ids.tolist()
        for layer in self.layers:
            chosen = self.chosen[layer]
            keep = [n for n, index in enumerate(ids) if chosen is None or index in chosen]
            maps = batch.acts[layer]
            flat = maps.flatten(2) if maps.dim() == 4 else maps[:, :, None]   # [B, C, P]
            for n in keep:
                where = torch.from_numpy(places(ids[n], self.positions[layer], *_grid(maps), seed=self.seed)).to(flat.device)
                vectors = flat[n][:, where].T                                    # [k, C]
                self.parts[layer]["vectors"].append(vectors.half().cpu())
                self.parts[layer]["images"].append(torch.full((len(where),), ids[n], dtype=torch.int32))

    def arrays(self, layer: str) -> dict[str, np.ndarray]:
        part = self.parts[layer]
        if not part["vectors"]:
            return {}
        return {"vectors": torch.cat(part["vectors"]).numpy(), "images": torch.cat(part["images"]).numpy()}


def _grid(maps: torch.Tensor) -> tuple[int, int]:
    return (int(maps.shape[2]), int(maps.shape[3])) if maps.dim() == 4 else (1, 1)
