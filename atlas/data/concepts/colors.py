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

from .. import photos
from ..sources import Item, files_fingerprint, view_side
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
class ColorConcepts:
    """Any image folder, framed as the model's evaluation frames it, with colour maps."""
    root: Path
    paths: tuple[Path, ...]
    size: int
    resize: int
    mask_size: int
    option: str = "--dissect"
    concepts: Concepts = CONCEPTS
    kind: str = "colors"

    @classmethod
    def open(cls, root: Path, model, mask_size: int, option: str) -> "ColorConcepts":
        size, resize = view_side(model)
        return cls(root, tuple(photos.list_images(root, option)), size, resize, mask_size, option)

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.paths[index].relative_to(self.root).as_posix()

    def load(self, index: int) -> Item:
        pixels = photos.model_view(self.paths[index], self.size, self.resize)
        return Item(pixels, color_names(pixels, self.mask_size)[None], (0,))

    def fingerprint(self) -> str:
        return files_fingerprint(self.root, self.paths)
