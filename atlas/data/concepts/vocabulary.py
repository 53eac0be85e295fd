"""Concept vocabularies and label maps: what every concept reader (Broden, a labelled folder,
colours) shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ...core.errors import AtlasError


@dataclass(frozen=True)
class Concepts:
    """The concept vocabulary of a dataset."""
    names: tuple[str, ...]           # concept index -> name
    category_of: tuple[int, ...]     # concept index -> category index
    categories: tuple[str, ...]      # category names

    def __post_init__(self):
        if len(self.names) != len(self.category_of):
            raise ValueError("every concept needs a category")

    def of(self, category: str) -> list[int]:
        index = self.categories.index(category)
        return [k for k, c in enumerate(self.category_of) if c == index]


def label_map(path: Path) -> np.ndarray:
    """A mask PNG's labels: R + 256 G per pixel (0: unlabelled), int32 [H, W]; a one-line
    error for a file that does not decode."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"), dtype=np.int32)
    except (OSError, ValueError, SyntaxError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
        raise AtlasError(f"cannot read mask {path}: {reason}") from None
    return rgb[..., 0] + 256 * rgb[..., 1]


def resize_labels(labels: np.ndarray, side: int) -> np.ndarray:
    """A label map at side x side, nearest neighbour (labels are not to be blended)."""
    if labels.shape == (side, side):
        return labels
    image = Image.fromarray(labels.astype(np.int32), mode="I")
    return np.asarray(image.resize((side, side), Image.Resampling.NEAREST), dtype=np.int32)


def to_indices(labels: np.ndarray, index_of: dict[int, int], where: str) -> np.ndarray:
    """Label numbers -> concept indices (-1 where unlabelled); an unknown number is an error naming `where`."""
    numbers = np.unique(labels)
    unknown = [int(n) for n in numbers if n != 0 and int(n) not in index_of]
    if unknown:
        raise AtlasError(f"{where}: label number {unknown[0]} is not in the dataset's labels")
    lookup = np.full(int(numbers.max()) + 1, -1, dtype=np.int32)
    for n in numbers:
        if n != 0:
            lookup[n] = index_of[int(n)]
    return lookup[labels]
