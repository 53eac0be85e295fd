"""Stored photos: the real photos caricatures imitate, kept beside the cache for the site.

    photos/<digest>.png    the photo as the model saw it (8-bit, square)
    photos/<digest>.json   {"digest", "name", "size", "file"}

A photo is named by the digest of its pixels, so a caricature's cache key follows
the photo's content, not its file name.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from .files import atomic_write, records

FOLDER = "photos"


def digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()[:16]


def store(root: Path, pixels: np.ndarray, name: str) -> str:
    """Keep the photo (uint8 HxWx3) beside the cache for the site; return its digest."""
    key = digest(pixels)
    folder = Path(root) / FOLDER
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    atomic_write(folder / f"{key}.png", buffer.getvalue())
    record = {"digest": key, "name": name, "size": int(pixels.shape[0]), "file": f"{key}.png"}
    atomic_write(folder / f"{key}.json", json.dumps(record).encode())
    return key


def _read(path: Path) -> dict | None:
    record = json.loads(path.read_bytes())
    image = path.with_name(str(record["file"]))
    if not (image.is_file() and image.parent == path.parent):
        return None
    return {**record, "path": image}


def scan(root: Path) -> dict[str, dict]:
    """digest -> stored record (with `path`), for every photo in the cache."""
    return {str(record["digest"]): record for _, record in records(Path(root) / FOLDER, "*.json", _read)}
