"""What a dataset pass reads: sources of images, each loadable alone (in a worker process).

A *source* lists the images and loads one of them as the model sees it: pixels
framed the way the model's evaluation frames them, plus, for concept datasets,
per-pixel and whole-image labels at the mask resolution. `ImageFolder` is any folder
of photos; the concept readers (`atlas.data.concepts`) are sources too.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import joblib
import numpy as np

from ..model.classifier import Model
from . import photos


@dataclass
class Item:
    """One image as a source loads it."""
    pixels: np.ndarray                       # uint8 [S, S, 3], the model's view
    maps: np.ndarray | None = None           # int32 [M, R, R]: concept index per pixel, -1 where unlabelled
    map_categories: tuple[int, ...] = ()     # category of each map
    whole: tuple[int, ...] = ()              # concepts that cover the whole image (scene, texture)


class Source(Protocol):
    """What a pass reads: images in a fixed order, each loadable alone (in a worker)."""
    root: Path
    option: str                              # the command-line option that named it, for messages

    def __len__(self) -> int: ...

    def name(self, index: int) -> str: ...   # the image's path relative to `root`

    def load(self, index: int) -> Item: ...  # raises photos.UnreadableImage for a broken file

    def fingerprint(self) -> str: ...


@dataclass
class ImageFolder:
    """Every image under a folder, framed as the model's evaluation frames it."""
    root: Path
    paths: tuple[Path, ...]
    size: int                                 # side of the view
    resize: int                               # shorter side before the centre crop
    option: str = "--examples"

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, index: int) -> str:
        return self.paths[index].relative_to(self.root).as_posix()

    def load(self, index: int) -> Item:
        return Item(photos.model_view(self.paths[index], self.size, self.resize))

    def fingerprint(self) -> str:
        return files_fingerprint(self.root, self.paths)


def image_folder(folder: Path, model: Model, option: str = "--examples") -> ImageFolder:
    size, resize = view_side(model)
    return ImageFolder(Path(folder), tuple(photos.list_images(Path(folder), option)), size, resize, option)


def view_side(model: Model) -> tuple[int, int]:
    """(crop, resize): the side natural images are shown to the model at, and the
    shorter side they are first resampled to, in the ratio of the model's own evaluation."""
    size = model.input_size
    return size, round(size * model.spec.resize_size / model.spec.crop_size)


def files_fingerprint(root: Path, paths: Sequence[Path]) -> str:
    """Names, sizes and modification times: adding, removing or rewriting a file changes it."""
    stats = [(p.relative_to(root).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    return joblib.hash(stats)


def chosen_photos(count: int, per_photo: int, budget: int | None, seed: int) -> set[int] | None:
    """The photos that give samples: all of them (None), or a seeded choice of as many as
    `budget` samples allow at `per_photo` each."""
    if budget is None or count * per_photo <= budget:
        return None
    rng = np.random.default_rng(seed)
    return set(int(i) for i in rng.choice(count, max(1, budget // per_photo), replace=False))


def shard_indices(count: int, shard: tuple[int, int]) -> list[int]:
    """Shard K of N (1-based): every N-th image, so shards are alike in content."""
    k, n = shard
    return list(range(k - 1, count, n))
