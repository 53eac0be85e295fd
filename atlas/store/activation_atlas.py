"""Stored activation atlases: the samples of a layer, their layout, and each atlas's cells.

Layout under the cache root::

    atlas/samples/<key>.npz    a layer's sampled vectors, attributions, photos and positions
    atlas/layouts/<key>.npz    their 2-D layout (one per samples, method, class and seed)
    atlas/<key>.json           an atlas: its grids' cells, each naming its icon's cache entry
    atlas/crops/<sha>.jpg      the patches of photos whose samples fell in a cell

The icons themselves are ordinary cache entries (kind "icon"). numpy only: the site
reads this without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from . import arrays as arrays_file
from .files import atomic_write, records, store_by_content
from .keys import versioned_key

ATLAS_VERSION = 1
FOLDER = "atlas"
CROPS = "crops"


class UnreadableAtlasWarning(UserWarning):
    """A stored atlas could not be read; the site leaves it out."""


def key(**parts) -> str:
    """A hash of `parts` and ATLAS_VERSION."""
    return versioned_key(ATLAS_VERSION, **parts)


def store_samples(root: Path, name: str, arrays: dict[str, np.ndarray], meta: dict) -> None:
    arrays_file.write(Path(root) / FOLDER / "samples" / f"{name}.npz", arrays, meta)


def load_samples(root: Path, name: str) -> tuple[dict, dict[str, np.ndarray]] | None:
    return arrays_file.load(Path(root) / FOLDER / "samples" / f"{name}.npz")


def store_layout(root: Path, name: str, coords: np.ndarray, method: str) -> None:
    arrays_file.write(Path(root) / FOLDER / "layouts" / f"{name}.npz", {"coords": coords.astype(np.float32)},
                      {"method": method})


def load_layout(root: Path, name: str) -> tuple[np.ndarray, str] | None:
    found = arrays_file.load(Path(root) / FOLDER / "layouts" / f"{name}.npz")
    return None if found is None else (found[1]["coords"], str(found[0]["method"]))


def store_crop(root: Path, data: bytes) -> str:
    """A photo patch, stored once by content; its name relative to the atlas folder. Not
    flushed to disk one by one (an atlas has thousands): they illustrate, and the atlas
    that names them is written, flushed, after them."""
    return f"{CROPS}/{store_by_content(Path(root) / FOLDER / CROPS, data, fsync=False)}"


def store(root: Path, name: str, record: dict) -> None:
    atomic_write(Path(root) / FOLDER / f"{name}.json", json.dumps(record).encode())


def _read(path: Path) -> dict:
    record = json.loads(path.read_bytes())
    for field in ("model", "fingerprint", "layer", "levels"):
        if field not in record:
            raise KeyError(field)
    return {**record, "key": path.stem, "written": path.stat().st_mtime_ns}


def scan(root: Path) -> dict[tuple, dict]:
    """The newest atlas per (model, fingerprint, layer, class) in the cache."""
    newest: dict[tuple, dict] = {}
    for _, record in records(Path(root) / FOLDER, "*.json", _read, warning=UnreadableAtlasWarning,
                                what="activation atlas"):
        ident = (record["model"], record["fingerprint"], record["layer"], record.get("class_index"))
        if ident not in newest or record["written"] > newest[ident]["written"]:
            newest[ident] = record
    return newest
