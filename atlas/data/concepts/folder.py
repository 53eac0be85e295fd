"""A plain folder of your own concepts.

    labels.json     {"labels": [{"number": 1, "name": "dog", "category": "object"}, ...]}
                    (or the short form {"1": "dog", ...}: every label in category "object")
    images/         the photos, any size, nested folders allowed
    masks/          one PNG per photo, same relative path with .png: each pixel's label is
                    R + 256 G (0: unlabelled); a photo without a mask has no labels

Photo and mask are framed alike, as the model's evaluation frames the photo; the
mask by nearest neighbour, then brought to the dissection's mask resolution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import photos
from ..sources import Item, files_fingerprint, view_side
from ...core.errors import AtlasError
from .vocabulary import Concepts, label_map, resize_labels, to_indices


@dataclass
class LabelledFolder:
    root: Path
    paths: tuple[Path, ...]
    concepts: Concepts
    index_of: dict[int, int]
    size: int
    resize: int
    mask_size: int
    option: str = "--dissect"
    kind: str = "folder"

    @classmethod
    def open(cls, root: Path, model, mask_size: int, option: str = "--dissect") -> "LabelledFolder":
        root = Path(root)
        numbers, names, categories = _read_labels(root / "labels.json")
        order = sorted(set(categories))
        concepts = Concepts(tuple(names), tuple(order.index(c) for c in categories), tuple(order))
        size, resize = view_side(model)
        paths = tuple(photos.list_images(root / "images", f"{option} {root}: images folder"))
        return cls(root, paths, concepts, {n: k for k, n in enumerate(numbers)}, size, resize, mask_size, option)

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.paths[index].relative_to(self.root / "images").as_posix()

    def mask_path(self, index: int) -> Path:
        return (self.root / "masks" / self.name(index)).with_suffix(".png")

    def load(self, index: int) -> Item:
        image = photos.open_rgb(self.paths[index])
        pixels = photos.eval_view(image, self.size, self.resize)
        mask = self.mask_path(index)
        if not mask.exists():
            return Item(pixels, np.zeros((0, self.mask_size, self.mask_size), np.int32))
        labels = label_map(mask)
        if labels.shape != (image.height, image.width):
            raise AtlasError(f"mask {mask} is {labels.shape[1]}x{labels.shape[0]}, its photo "
                             f"{image.width}x{image.height}")
        indices = to_indices(labels, self.index_of, f"mask {mask}")
        framed = _frame(indices, self.size, self.resize)
        per_category = []
        for category in range(len(self.concepts.categories)):
            mine = np.isin(framed, self.concepts.of(self.concepts.categories[category]))
            per_category.append((category, np.where(mine, framed, -1)))
        maps = [resize_labels(m, self.mask_size) for _, m in per_category]
        return Item(pixels, np.stack(maps), tuple(c for c, _ in per_category))

    def fingerprint(self) -> str:
        masks = [p for p in (self.mask_path(i) for i in range(len(self))) if p.exists()]
        return files_fingerprint(self.root, [*self.paths, *masks, self.root / "labels.json"])


def _frame(labels: np.ndarray, size: int, resize: int) -> np.ndarray:
    """The photo's framing (`photos.frame`) of its label map, nearest neighbour."""
    image = Image.fromarray(labels.astype(np.int32), mode="I")
    return np.asarray(photos.frame(image, size, resize, Image.Resampling.NEAREST), dtype=np.int32)


def _read_labels(path: Path) -> tuple[list[int], list[str], list[str]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise AtlasError(f"cannot read {path}: {err}") from None
    if isinstance(data, dict) and "labels" not in data:
        data = {"labels": [{"number": k, "name": v, "category": "object"} for k, v in data.items()]}
    try:
        rows = [(int(item["number"]), str(item["name"]), str(item.get("category") or "object"))
                for item in data["labels"]]
    except (TypeError, KeyError, ValueError):
        raise AtlasError(f"{path}: expected {{\"labels\": [{{\"number\": 1, \"name\": ..., \"category\": ...}}]}}") from None
    if not rows or any(n <= 0 for n, _, _ in rows):
        raise AtlasError(f"{path}: label numbers must be 1 or more (0 means unlabelled)")
    return [n for n, _, _ in rows], [name for _, name, _ in rows], [c for _, _, c in rows]
