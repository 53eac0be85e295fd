"""Eleven colour concepts for any folder of photos, from the colour-name table Network Dissection used.

`w2color.npy` (shipped beside this module, with its MIT notice `LICENSE-NetDissect.md`)
is a 32x32x32 table: for 8-bit (r, g, b), `table[r // 8, g // 8, b // 8]` is the
index of the most probable of eleven colour names (van de Weijer et al., 2009).
Every pixel of the model's view, averaged down to the mask resolution, gets its
colour: a pixel-level "color" category with no annotation, so a dissection runs
offline on the photos a build already uses for its dataset examples.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..sources import ImageFolder, Item, image_folder
from .vocabulary import Concepts

NAMES = ("black", "blue", "brown", "grey", "green", "orange", "pink", "purple", "red", "white", "yellow")
CONCEPTS = Concepts(NAMES, (0,) * len(NAMES), ("color",))


@functools.lru_cache(maxsize=1)
def table() -> np.ndarray:
    return np.load(Path(__file__).with_name("w2color.npy"))


def color_names(pixels: np.ndarray, side: int) -> np.ndarray:
    """int32 [side, side]: the colour-name index of every pixel of `pixels` (uint8 HxWx3)
    after an area average down to side x side."""
    small = pixels
    if pixels.shape[:2] != (side, side):
        small = np.asarray(Image.fromarray(pixels).resize((side, side), Image.Resampling.BOX), dtype=np.uint8)
    bins = small.astype(np.int32) // 8
    return table()[bins[..., 0], bins[..., 1], bins[..., 2]].astype(np.int32)


@dataclass
class ColorConcepts(ImageFolder):
    """Any image folder (read as `ImageFolder` reads it) with the colour map of every photo."""
    mask_size: int = 1
    concepts: Concepts = CONCEPTS
    kind: str = "colors"

    @classmethod
    def open(cls, root: Path, model, mask_size: int, option: str) -> "ColorConcepts":
        folder = image_folder(root, model, option)
        return cls(folder.root, folder.paths, folder.size, folder.resize, option, mask_size)

    def load(self, index: int) -> Item:
        pixels = super().load(index).pixels
        return Item(pixels, color_names(pixels, self.mask_size)[None], (0,))
