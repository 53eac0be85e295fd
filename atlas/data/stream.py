"""One streaming pass over a source of photos, shared by every feature that reads real images.

    source ──► workers decode and frame each image (and its concept labels) ──► batches
    batches ──► the device: one forward to every layer any consumer asks for
            ──► each consumer's `update` (top-k examples, quantile sketches, IoU counts, atlas samples)

Loading runs in DataLoader worker processes (`atlas.data.sources` says what a
source is), so decoding overlaps the forward pass. An image that does not decode
is skipped with a warning and counted (`PassReport.skipped`); the pass goes on.

Consumers keep bounded state that merges exactly, so memory grows with the
units and samples, never with the dataset, and shards of a folder can be merged.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch

from ..core.errors import AtlasError
from ..model.classifier import Model, normalize
from ..model.forward import activations
from ..model.runtime import Runtime
from . import photos
from .sources import Item, Source


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


def stream(model: Model, source: Source, consumers: Sequence[Consumer], runtime: Runtime, *,
           indices: Sequence[int] | None = None, on_batch: Callable[[int], None] = lambda n: None) -> PassReport:
    """Feed every image of `source` (or those at `indices`) to every consumer, batch by batch
    (`runtime.photos_per_batch` photos, decoded by `runtime.workers` processes).

    One forward pass per batch reaches every layer any consumer names; it runs
    without gradients (a consumer that needs them takes `Batch.model_input`)."""
    chosen = list(range(len(source))) if indices is None else list(indices)
    workers = default_workers() if runtime.workers is None else runtime.workers
    device = runtime.device
    loader = torch.utils.data.DataLoader(
        _Loaded(source, chosen), batch_size=runtime.photos_per_batch, shuffle=False, num_workers=workers,
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
            with torch.no_grad(), runtime.autocast():
                acts = activations(model, x, layers)
            acts = {name: value.float() for name, value in acts.items()}
        batch = Batch(ids, images, acts, x, [item for _, item in good])
        for consumer in consumers:
            consumer.update(batch)
        report.images += len(good)
        on_batch(len(rows))
    report.seconds = time.perf_counter() - start
    return report
