"""One streaming pass over a folder of photos, shared by every pass that reads real images.

    source ──► workers decode and frame each image (and its concept labels) ──► batches
    batches ──► the device: one forward to every layer any consumer asks for
            ──► each consumer's `update` (top-k examples, quantile sketches, IoU counts, atlas samples)

A *source* lists the images and loads one of them as the model sees it: pixels
framed the way the model's evaluation frames them, plus, for concept datasets,
per-pixel and whole-image labels at the mask resolution. Loading runs in
DataLoader worker processes, so decoding overlaps the forward pass. An image
that does not decode is skipped with a warning and counted (`PassReport.skipped`);
the pass goes on.

Consumers keep bounded state that merges exactly, so memory grows with the
units and samples, never with the dataset, and shards of a folder can be merged.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import joblib
import numpy as np
import torch

from ..model import device as devices
from . import photos
from ..core.errors import AtlasError
from ..model.classifier import Model, normalize
from ..model.forward import activations


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


def shard_indices(count: int, shard: tuple[int, int]) -> list[int]:
    """Shard K of N (1-based): every N-th image, so shards are alike in content."""
    k, n = shard
    return list(range(k - 1, count, n))


@dataclass
class Batch:
    """What consumers see of one batch, on the device."""
    ids: torch.Tensor                         # [B] source indices
    images: torch.Tensor                      # [B, 3, S, S] in [0, 1]
    acts: dict[str, torch.Tensor]             # layer -> maps [B, C, H, W] or vectors [B, C] (float32)
    model_input: torch.Tensor                 # the normalized input the forward pass took
    items: list[Item] = field(default_factory=list)   # labels, for consumers that count concepts


class Consumer(Protocol):
    layers: frozenset[str]

    def update(self, batch: Batch) -> None: ...


@dataclass
class PassReport:
    images: int = 0                           # images every consumer saw
    skipped: list[str] = field(default_factory=list)   # one line per unreadable image
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


class _Loaded(torch.utils.data.Dataset):
    """The source's images by position in `indices`, for DataLoader workers."""

    def __init__(self, source: Source, indices: Sequence[int]):
        self.source, self.indices = source, list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position: int):
        index = self.indices[position]
        try:
            return index, self.source.load(index), None
        except photos.UnreadableImage as err:   # a broken photo: skipped, counted
            return index, None, str(err)
        except AtlasError as err:                # broken labels: the dataset itself is wrong
            return index, None, _Fatal(str(err))


class _Fatal(str):
    """An item error that stops the pass (a message crossing from a worker as a value,
    so the user sees one line rather than a worker's traceback)."""


def _collate(rows):
    return rows   # a list of (index, Item | None, error | None): stacked in the main process


def _one_thread(_worker: int) -> None:
    torch.set_num_threads(1)   # workers decode; the main process's threads run the model


def default_workers() -> int:
    """Decoding processes: every core but the one feeding the device, at most 8."""
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def stream(model: Model, source: Source, consumers: Sequence[Consumer], device: torch.device,
           batch_size: int = 32, workers: int | None = None, indices: Sequence[int] | None = None,
           precision: str = "fp32", on_batch: Callable[[int], None] = lambda n: None) -> PassReport:
    """Feed every image of `source` (or those at `indices`) to every consumer, batch by batch.

    One forward pass per batch reaches every layer any consumer names; it runs
    without gradients (a consumer that needs them takes `Batch.model_input`)."""
    chosen = list(range(len(source))) if indices is None else list(indices)
    workers = default_workers() if workers is None else workers
    loader = torch.utils.data.DataLoader(
        _Loaded(source, chosen), batch_size=batch_size, shuffle=False, num_workers=workers,
        collate_fn=_collate, worker_init_fn=_one_thread if workers else None,
        prefetch_factor=2 if workers else None, persistent_workers=False)
    layers = set().union(*(c.layers for c in consumers)) if consumers else set()
    report = PassReport()
    start = time.perf_counter()
    for rows in loader:
        good = [(i, item) for i, item, _ in rows if item is not None]
        for _, _, error in rows:
            if isinstance(error, _Fatal):
                raise AtlasError(str(error))
            if error is not None:
                report.skipped.append(error)
                warnings.warn(f"{error}; skipped", photos.SkippedImageWarning, stacklevel=2)
        if not good:
            on_batch(len(rows))
            continue
        ids = torch.tensor([i for i, _ in good], device=device)
        pixels = torch.from_numpy(np.stack([item.pixels for _, item in good])).to(device, non_blocking=True)
        images = pixels.permute(0, 3, 1, 2).float() / 255
        x = normalize(model, images).contiguous(memory_format=torch.channels_last)
        acts: dict[str, Any] = {}
        if layers:
            with torch.no_grad(), devices.autocast(device, precision):
                acts = activations(model, x, layers)
            acts = {name: value.float() for name, value in acts.items()}
        batch = Batch(ids, images, acts, x, [item for _, item in good])
        for consumer in consumers:
            consumer.update(batch)
        report.images += len(good)
        on_batch(len(rows))
    report.seconds = time.perf_counter() - start
    return report
