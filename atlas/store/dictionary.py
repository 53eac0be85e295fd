"""Stored dictionaries: each layer's sampled vectors, its trained dictionary, and the record the site reads.

Layout under the cache root::

    dictionary/<key>/part-<K>of<N>.npz   shard K's sampled vectors (with their photo and held-out flag)
    dictionary/<key>/checkpoint-<s>.pt   training of seed s after its last finished epoch (bytes)
    dictionary/<key>/trained-<s>.npz     seed s's dictionary: its weights as arrays, its quality in the metadata
    dictionary/<key>.json                the layer's record: quality, stability, and every feature
    dictionary/crops/<sha>.jpg           crops of the photos that excite a feature most, named by content

The key names the model, its weights, the layer, the photo folder's fingerprint and
every setting that changes the dictionary. numpy and JSON only: the site reads this
without torch. `LayerDictionary` is the record the dictionary job writes and the site reads.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import arrays as arrays_file
from .files import atomic_write, records, store_by_content
from .keys import versioned_key

DICTIONARY_VERSION = 1
# The record's own version, so vectors and training stay cached: 2 added each feature's
# coherence, 3 ranks a feature's photos by its mean code over their positions instead of its maximum,
# 4 gives each top photo a heatmap of where the feature fires in its crop.
RECORD_VERSION = 4
FOLDER = "dictionary"
CROPS = "crops"


class UnreadableDictionaryWarning(UserWarning):
    """A stored dictionary record could not be read; the site leaves it out."""


@dataclass(frozen=True)
class Feature:
    """One feature of a layer's dictionary, as the site shows it."""
    index: int
    frequency: float                     # share of held-out positions it fires on
    picture: str | None                  # cache key of its rendered picture (None: not rendered)
    channels: list[list]                 # [[channel, weight], ...]: its atom's strongest channels, by |weight|
    # The photos that excite it most: file, value, box, crop, and heat (`encode_heat`): where
    # in the crop it fires, 255 at its peak over these photos.
    examples: list[dict]
    # How alike its top photos look to the model: their outputs' mean pairwise cosine
    # similarity (`atlas.dictionary.features.coherences`); None where unknown.
    coherence: float | None = None


@dataclass(frozen=True)
class LayerDictionary:
    """One layer's dictionary: how it was made, how good it is on held-out photos, and its features."""
    model: str
    fingerprint: str
    layer: str
    dataset: str                         # the photo folder as the user named it
    images: int                          # photos the vectors came from (unreadable ones excluded)
    skipped: int
    shape: dict                          # atlas.dictionary.sae.DictionaryShape
    training: dict                       # atlas.dictionary.train.Training
    train_vectors: int
    quality: dict                        # r2, l0, dead, vectors: on the held-out photos' vectors
    stability: float | None              # matched cosine of two seeds' atoms (None: one seed trained)
    pooling: str                         # how a photo's positions make its value for a feature
    features: list[Feature] = field(default_factory=list)
    trained: str = ""                    # key of its trained weights (the first seed's: `load_trained`)

    def to_dict(self) -> dict:
        return asdict(self)


def feature_layer(layer: str) -> str:
    """The name a layer's dictionary features go by where they are treated as a layer's
    units (their dissection is stored under it)."""
    return f"{layer}#features"


def key(**parts) -> str:
    """A hash of `parts` and DICTIONARY_VERSION (a record's own version goes in as `record_version`)."""
    return versioned_key(DICTIONARY_VERSION, **parts)


def _folder(root: Path, name: str) -> Path:
    return Path(root) / FOLDER / name


def store_part(root: Path, name: str, shard: tuple[int, int], *, arrays: dict[str, np.ndarray], meta: dict) -> None:
    arrays_file.write(_folder(root, name) / f"part-{shard[0]}of{shard[1]}.npz", arrays, meta)


def load_part(root: Path, name: str, shard: tuple[int, int]) -> tuple[dict, dict[str, np.ndarray]] | None:
    return arrays_file.load(_folder(root, name) / f"part-{shard[0]}of{shard[1]}.npz")


def merged_parts(root: Path, name: str, shards: int) -> tuple[dict, dict[str, np.ndarray]] | None:
    """Every shard's vectors, concatenated in shard order, once all N are stored; else None."""
    parts = [load_part(root, name, (k, shards)) for k in range(1, shards + 1)]
    if any(part is None for part in parts):
        return None
    metas = [meta for meta, _ in parts]
    filled = [arrays for _, arrays in parts if arrays]
    merged = {field: np.concatenate([arrays[field] for arrays in filled]) for field in (filled[0] if filled else {})}
    return {"images": sum(int(m.get("images", 0)) for m in metas),
            "skipped": sum(int(m.get("skipped", 0)) for m in metas)}, merged


def store_checkpoint(root: Path, name: str, seed: int, data: bytes) -> None:
    atomic_write(_folder(root, name) / f"checkpoint-{seed}.pt", data)


def load_checkpoint(root: Path, name: str, seed: int) -> bytes | None:
    try:
        return (_folder(root, name) / f"checkpoint-{seed}.pt").read_bytes()
    except FileNotFoundError:
        return None


def store_trained(root: Path, name: str, seed: int, weights: dict[str, np.ndarray], *, meta: dict) -> None:
    """Seed `seed`'s finished dictionary; its checkpoint, now superseded, goes."""
    arrays_file.write(_folder(root, name) / f"trained-{seed}.npz", weights, meta)
    (_folder(root, name) / f"checkpoint-{seed}.pt").unlink(missing_ok=True)


def load_trained(root: Path, name: str, seed: int) -> tuple[dict, dict[str, np.ndarray]] | None:
    return arrays_file.load(_folder(root, name) / f"trained-{seed}.npz")


def store_crop(root: Path, data: bytes) -> str:
    """A crop, stored once by content; its name relative to the dictionary folder."""
    return f"{CROPS}/{store_by_content(Path(root) / FOLDER / CROPS, data, fsync=False)}"


def encode_heat(heat: np.ndarray) -> str:
    """A square uint8 heatmap as a record keeps it: base64 of its bytes, row by row."""
    return base64.b64encode(np.ascontiguousarray(heat, np.uint8).tobytes()).decode("ascii")


def decode_heat(text) -> np.ndarray | None:
    """`encode_heat`'s square map back; None when `text` is not one."""
    try:
        data = np.frombuffer(base64.b64decode(text, validate=True), np.uint8)
    except (TypeError, ValueError, binascii.Error):
        return None
    side = math.isqrt(len(data))
    return data.reshape(side, side) if side and side * side == len(data) else None


def store(root: Path, name: str, record: LayerDictionary) -> None:
    atomic_write(Path(root) / FOLDER / f"{name}.json", json.dumps(record.to_dict()).encode())


def load(root: Path, name: str) -> LayerDictionary | None:
    try:
        return _record(json.loads((Path(root) / FOLDER / f"{name}.json").read_bytes()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _record(data: dict) -> LayerDictionary:
    features = [Feature(**feature) for feature in data["features"]]
    return LayerDictionary(**{**data, "features": features})


def _read(path: Path) -> tuple[int, LayerDictionary]:
    return path.stat().st_mtime_ns, _record(json.loads(path.read_bytes()))


def scan(root: Path) -> dict[tuple[str, str, str], LayerDictionary]:
    """The newest record per (model, fingerprint, layer) in the cache: a layer learned again
    from other photos or settings replaces the old one on the site."""
    newest: dict[tuple[str, str, str], tuple[int, LayerDictionary]] = {}
    for _, (when, record) in records(Path(root) / FOLDER, "*.json", _read, warning=UnreadableDictionaryWarning,
                                     what="dictionary"):
        ident = (record.model, record.fingerprint, record.layer)
        if ident not in newest or when > newest[ident][0]:
            newest[ident] = (when, record)
    return {ident: record for ident, (_, record) in newest.items()}
