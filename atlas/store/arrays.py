"""Arrays with their metadata: one `.npz` file per record, the metadata as JSON inside it.

Every store that keeps numbers (dissection, connections, activation-atlas samples)
writes and reads its records here, so they are written whole or not at all
(`files.atomic_write`) and read back without pickles.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .files import atomic_write

# What a torn, foreign or half-written record raises when read.
UNREADABLE = (OSError, KeyError, ValueError, TypeError)


def write(path: Path, arrays: dict[str, np.ndarray], meta: dict, *, compress: bool = False) -> None:
    """Store `arrays` and the JSON-ready `meta` at `path` (`.npz`), atomically."""
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, meta=np.array(json.dumps(meta)), **arrays)
    atomic_write(Path(path), buffer.getvalue())


def read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of the record at `path`; raises one of UNREADABLE when it cannot be read."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data["meta"])), {k: data[k] for k in data.files if k != "meta"}


def load(path: Path) -> tuple[dict, dict[str, np.ndarray]] | None:
    """`read`, or None when the record is absent or cannot be read (compute it again)."""
    try:
        return read(path)
    except UNREADABLE:
        return None
