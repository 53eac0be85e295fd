"""Which half of the photos an image belongs to, for confirming a detector on held-out photos.

Bau et al.'s rule calls a unit a detector when its best concept's IoU reaches 0.04 on
the whole dataset. On a few hundred photos that rule is met by chance: among many
concepts one fits a random unit's regions well enough. So the IoU pass counts twice,
once per half of the images, and a unit *detects* a concept only when that concept is
its best on both halves and reaches the bar on each: one half chooses, the other
confirms on photos that played no part in the choice (`store.dissection.detects`).

Why halves and not a bootstrap interval: a bootstrap resamples the same photos that
chose the concept, so a concept chosen for fitting noise stays chosen in most
resamples; a split confirms on photos that did not choose it, and costs nothing but
a second set of counts (the same pass, the same regions).

The split is a seeded hash of the image's index in its source, fixed for a dataset:
the same photo lands in the same half in every run, shard and batch.
"""

from __future__ import annotations

import zlib

import numpy as np

SEED = 0


def half_of(indices, seed: int = SEED) -> np.ndarray:
    """[B] 0 or 1: the half each image index belongs to."""
    return np.array([zlib.crc32(f"dissection half|{seed}|{int(i)}".encode()) & 1 for i in indices], dtype=np.int64)
