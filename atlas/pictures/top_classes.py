"""Top-5 labels for cache entries stored before renders recorded them.

A render records what the model calls its image in its final scoring pass
(optvis.render). Entries made by older versions keep their cache keys (their
units have no parameters), so a build serves them as they are; this fills in
their labels from the stored images instead: one forward pass per image, no
rendering. The PNG is the 8-bit image the site shows, so the labels describe it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..store import cache
from ..model.classifier import Model, normalize
from ..model.runtime import Runtime
from ..model.forward import activations
from ..engine.render import top_labels
from ..data.photos import as_tensor
from ..store.files import atomic_write


def missing(root: Path, keys) -> list[cache.Entry]:
    """The readable, successful entries among `keys` that have no labels."""
    entries = (cache.load(root, key) for key in keys)
    return [e for e in entries if e is not None and e.ok and not e.meta.get("labels")]


def backfill(model: Model, entries: list[cache.Entry], *, root: Path, runtime: Runtime, batch: int = 16) -> int:
    """Compute and store the labels of `entries`; return how many were updated."""
    for first in range(0, len(entries), batch):
        chunk = entries[first:first + batch]
        images = [_pixels(path) for entry in chunk for path in entry.image_paths]
        owners = [n for n, entry in enumerate(chunk) for _ in entry.image_paths]
        by_size: dict[tuple, list[int]] = {}
        for i, image in enumerate(images):
            by_size.setdefault(tuple(image.shape), []).append(i)
        probs: list[torch.Tensor | None] = [None] * len(images)
        for rows in by_size.values():
            x = torch.stack([images[i] for i in rows]).to(runtime.device)
            with torch.no_grad(), runtime.autocast():
                logits = activations(model, normalize(model, x), {model.output_layer})[model.output_layer]
            for i, p in zip(rows, torch.softmax(logits.float(), dim=1).cpu()):
                probs[i] = p
        for n, entry in enumerate(chunk):
            mine = torch.stack([probs[i] for i, owner in enumerate(owners) if owner == n])
            meta = {**entry.meta, "labels": [list(pair) for pair in top_labels(mine.mean(0))]}
            path = Path(root) / "entries" / entry.key[:2] / f"{entry.key}.json"
            atomic_write(path, json.dumps(meta, indent=1, sort_keys=True).encode())
    return len(entries)


def _pixels(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        return as_tensor(np.asarray(image.convert("RGB")))
