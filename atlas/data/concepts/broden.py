"""Broden's own format (Bau et al., CVPR 2017), so a user who has `broden1_224` points at it.

    index.csv       image, split, ih, iw, sh, sw, color, object, material, part, scene, texture
                    A category cell is empty, `;`-separated label numbers (whole-image
                    labels: scene, texture), or `;`-separated mask PNG paths. Paths are
                    relative to images/; a mask pixel's label is R + 256 G (0: unlabelled).
    label.csv       number, name, category, frequency, coverage, syns; category reads like
                    `object(120);part(3)`: a label's category is the one it occurs in most
    category.csv    name, ... (the categories, in order)
    c_<cat>.csv     per-category codes (not needed here)
    images/         the images (ih x iw) and masks (sh x sw, half the image size)

Images are 224 px squares: the model sees each whole, resampled to its input
side; masks are brought to the dissection's mask resolution by nearest neighbour.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import photos
from ..sources import Item
from ...core.errors import AtlasError
from .vocabulary import Concepts, label_map, resize_labels, to_indices

COLUMNS = ("image", "split", "ih", "iw", "sh", "sw")


@dataclass(frozen=True)
class Row:
    image: str
    mask_side: tuple[int, int]
    masks: tuple[tuple[int, str], ...]     # (category index, path relative to images/)
    whole: tuple[tuple[int, int], ...]     # (category index, label number)


@dataclass
class Broden:
    root: Path
    rows: tuple[Row, ...]
    concepts: Concepts
    index_of: dict[int, int]                # label number -> concept index
    size: int
    mask_size: int
    option: str = "--dissect"
    kind: str = "broden"

    @classmethod
    def open(cls, root: Path, size: int, mask_size: int, option: str = "--dissect") -> "Broden":
        root = Path(root)
        for name in ("index.csv", "label.csv"):
            if not (root / name).is_file():
                raise AtlasError(f"{option} {root}: no {name}; a Broden folder holds index.csv, label.csv, "
                                 "category.csv and images/")
        categories = _categories(root)
        numbers, names, category_of = _labels(root / "label.csv", categories)
        concepts = Concepts(tuple(names), tuple(category_of), tuple(categories))
        rows = _index(root / "index.csv", categories)
        if not rows:
            raise AtlasError(f"{option} {root}/index.csv lists no images")
        return cls(root, tuple(rows), concepts, {n: k for k, n in enumerate(numbers)}, size, mask_size, option)

    def __len__(self) -> int:
        return len(self.rows)

    def name(self, index: int) -> str:
        return self.rows[index].image

    def load(self, index: int) -> Item:
        row = self.rows[index]
        pixels = photos.eval_view(photos.open_rgb(self.root / "images" / row.image), self.size, self.size)
        maps, categories = [], []
        for category, mask in row.masks:
            labels = label_map(self.root / "images" / mask)
            if labels.shape != row.mask_side:
                raise AtlasError(f"mask {mask} is {labels.shape[1]}x{labels.shape[0]}, index.csv says "
                                 f"{row.mask_side[1]}x{row.mask_side[0]}")
            indices = to_indices(labels, self.index_of, f"mask {mask}")
            maps.append(resize_labels(indices, self.mask_size))
            categories.append(category)
        whole = []
        for category, number in row.whole:
            if number not in self.index_of:
                raise AtlasError(f"index.csv, image {row.image}: label number {number} is not in label.csv")
            whole.append(self.index_of[number])
        stacked = np.stack(maps) if maps else np.zeros((0, self.mask_size, self.mask_size), np.int32)
        return Item(pixels, stacked, tuple(categories), tuple(whole))

    def fingerprint(self) -> str:
        import joblib

        files = [self.root / name for name in ("index.csv", "label.csv", "category.csv")]
        return joblib.hash([(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.exists()])


def _categories(root: Path) -> list[str]:
    path = root / "category.csv"
    if path.is_file():
        with open(path, newline="") as f:
            found = [row["name"] for row in csv.DictReader(f) if row.get("name")]
        if found:
            return found
    with open(root / "index.csv", newline="") as f:   # else: the index's category columns
        header = next(csv.reader(f), [])
    return [name for name in header if name not in COLUMNS]


def _labels(path: Path, categories: list[str]) -> tuple[list[int], list[str], list[int]]:
    numbers, names, category_of = [], [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"number", "name", "category"} <= set(reader.fieldnames):
            raise AtlasError(f"{path}: expected the columns number, name, category")
        for row in reader:
            number = int(row["number"])
            if number == 0:
                continue   # unlabelled
            counts = {m[1]: int(m[2] or 0) for m in re.finditer(r"([\w-]+)(?:\((\d+)\))?", row["category"] or "")}
            known = {name: count for name, count in counts.items() if name in categories}
            if not known:
                raise AtlasError(f"{path}: label {number} ({row['name']}) has no known category "
                                 f"({row['category']!r}; categories: {', '.join(categories)})")
            numbers.append(number)
            names.append(row["name"])
            category_of.append(categories.index(max(known, key=lambda name: (known[name], -categories.index(name)))))
    return numbers, names, category_of


def _index(path: Path, categories: list[str]) -> list[Row]:
    rows = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in ("image", "sh", "sw") if c not in (reader.fieldnames or [])]
        if missing:
            raise AtlasError(f"{path}: missing column {missing[0]}")
        for line, row in enumerate(reader, 2):
            masks, whole = [], []
            for category, name in enumerate(categories):
                for part in filter(None, (row.get(name) or "").split(";")):
                    if part.isdigit():
                        whole.append((category, int(part)))
                    else:
                        masks.append((category, part))
            try:
                side = (int(row["sh"]), int(row["sw"]))
            except ValueError:
                raise AtlasError(f"{path}, line {line}: sh and sw must be numbers") from None
            rows.append(Row(row["image"], side, tuple(masks), tuple(whole)))
    return rows
