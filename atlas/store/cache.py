"""Content-addressed store of rendered units: images plus the metadata pages show.

Layout under the cache root::

    entries/ab/<key>.json              metadata; written last, so its presence
                                       means the entry is complete
    entries/ab/<key>.<nonce>.<i>.png   the images it names, with their sha256
    models/<slug>.json                 one card per (model, weights): layers,
                                       class names, preprocessing

Every file is written under a temporary name and renamed into place, so a build
killed at any moment leaves either a whole entry or none. Image names carry a
per-write nonce, so two builds writing the same key at once never mix one's
metadata with the other's images: the last metadata written wins, whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import joblib
import numpy as np
from PIL import Image

from ..core.errors import AtlasError
from ..core.settings import RECIPE_VERSION, Settings
from .files import atomic_write, records
from ..core.units import Unit


class CorruptEntryWarning(UserWarning):
    """A cache entry failed its checks on read; it will be rendered again."""


@dataclass(frozen=True)
class Entry:
    key: str
    meta: dict
    image_paths: tuple[Path, ...]

    @property
    def unit(self) -> Unit:
        return Unit.from_dict(self.meta["unit"])

    @property
    def ok(self) -> bool:
        return self.meta.get("status") == "ok"


def entry_key(model_name: str, fingerprint: str, unit: Unit, settings: Settings) -> str:
    """The stable hash that names a unit's render: same inputs, same key."""
    return joblib.hash({
        "model": model_name,
        "weights": fingerprint,
        "unit": unit.as_dict(),
        "settings": settings.for_unit(unit).as_dict(),
        "recipe_spec": settings.recipe_for(unit).key(),
        "recipe_version": RECIPE_VERSION,
    })


def _entry_dir(root: Path, key: str) -> Path:
    return Path(root) / "entries" / key[:2]


def store(root: Path, key: str, meta: dict, images: list[np.ndarray] = ()) -> Entry:
    """Write the images (uint8 HxWx3) and then the metadata of one entry, atomically."""
    folder = _entry_dir(root, key)
    nonce = secrets.token_hex(4)
    records, paths = [], []
    try:
        for i, image in enumerate(images):
            data = _png_bytes(image)
            path = folder / f"{key}.{nonce}.{i}.png"
            atomic_write(path, data)
            records.append({"file": path.name, "sha256": hashlib.sha256(data).hexdigest()})
            paths.append(path)
        meta = {**meta, "key": key, "images": records}
        atomic_write(folder / f"{key}.json", json.dumps(meta, indent=1, sort_keys=True).encode())
    except AtlasError:
        # No metadata names these images (their nonce is ours alone): remove them
        # rather than leave orphans on a disk that is already full.
        for path in paths:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
    return Entry(key, meta, tuple(paths))


def load(root: Path, key: str) -> Entry | None:
    """The entry for `key`, or None when absent or corrupt (corruption warns)."""
    return _read(Path(root), _entry_dir(root, key) / f"{key}.json")


def scan(root: Path) -> Iterator[Entry]:
    """Every readable entry in the cache; corrupt ones warn and are skipped."""
    for _, entry in records(Path(root) / "entries", "*/*.json", lambda path: _read(Path(root), path)):
        yield entry


def _read(root: Path, meta_path: Path) -> Entry | None:
    try:
        meta = json.loads(meta_path.read_bytes())
        paths = []
        for record in meta["images"]:
            path = meta_path.parent / record["file"]
            if hashlib.sha256(path.read_bytes()).hexdigest() != record["sha256"]:
                raise ValueError(f"image {path.name} does not match its checksum")
            paths.append(path)
        if meta.get("status") == "ok" and not paths:
            raise ValueError("entry has no images")
        return Entry(meta["key"], meta, tuple(paths))
    except FileNotFoundError as err:
        if err.filename == str(meta_path):
            return None
        problem = f"missing file {Path(err.filename).name}"
    except (ValueError, KeyError, TypeError) as err:
        problem = str(err) or type(err).__name__
    warnings.warn(f"corrupt cache entry {meta_path.stem} ({problem}); it will be rendered again",
                  CorruptEntryWarning, stacklevel=3)
    return None


def store_model_card(root: Path, card: dict) -> None:
    atomic_write(Path(root) / "models" / f"{card['slug']}.json",
                 json.dumps(card, indent=1, sort_keys=True).encode())


def load_model_cards(root: Path) -> list[dict]:
    found = records(Path(root) / "models", "*.json", lambda path: json.loads(path.read_bytes()),
                    warning=CorruptEntryWarning, what="model card")
    return [card for _, card in found]


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB").save(buffer, format="PNG")
    return buffer.getvalue()
