"""Stored dataset examples: one JSON result per (model, weights, layer, dataset, settings).

Layout under the cache root::

    examples/<key>.json                  one layer's result (`LayerExamples.to_dict`)
    examples/crops/<sha256>.jpg          receptive-field crops, named by content and
                                         shared by every result that shows them

The examples pass (`atlas.examples`) writes results here; the site reads them back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib

from .files import atomic_write, records, store_by_content

EXAMPLES_VERSION = 2   # 2: images framed by atlas.photos.eval_view (PIL), as every dataset pass frames them;
                       # the key names the precision of the forward pass
FOLDER = "examples"
CROPS_DIR = "crops"    # <cache>/examples/crops/<sha256>.jpg


class UnreadableExamplesWarning(UserWarning):
    """A stored examples file could not be read; the site leaves it out."""


@dataclass(frozen=True)
class Example:
    file: str                          # relative to the dataset folder
    value: float                       # the unit's objective on the image
    box: tuple[int, int, int, int]     # crop (left, top, right, bottom) in model-input pixels
    crop: str                          # stored crop, relative to the cache's examples folder


@dataclass(frozen=True)
class LayerExamples:
    """One layer's top examples per channel, as stored."""
    model: str
    fingerprint: str
    layer: str
    dataset: str                       # the folder as the user named it
    dataset_fingerprint: str
    images: int                        # images the pass read (unreadable ones excluded)
    k: int
    size: int                          # side of the model-input view the boxes are in
    receptive_field: int
    channels: list[list[Example]]

    def to_dict(self) -> dict:
        return {**asdict(self), "channels": [[asdict(e) for e in shown] for shown in self.channels]}


def examples_key(model: str, fingerprint: str, layer: str, *, dataset: str, k: int, size: int,
                 precision: str = "fp32") -> str:
    return joblib.hash({"model": model, "weights": fingerprint, "layer": layer, "dataset": dataset, "k": k,
                        "size": size, "precision": precision, "version": EXAMPLES_VERSION})


def path(root: Path, key: str) -> Path:
    return Path(root) / FOLDER / f"{key}.json"


def load(root: Path, key: str) -> dict | None:
    """The stored result for `key` as plain JSON, or None when absent or torn (compute again)."""
    try:
        return json.loads(path(root, key).read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def store(root: Path, key: str, result: LayerExamples) -> dict:
    data = json.dumps(result.to_dict()).encode()
    atomic_write(path(root, key), data)
    return json.loads(data)   # the same plain lists a later cached read gives


def store_crop(root: Path, data: bytes) -> str:
    """Store a crop once, named by its content (relative to the examples folder): the
    same image and box recur across channels, layers and runs, and a name that is its
    content's hash is already right wherever it exists."""
    return f"{CROPS_DIR}/{store_by_content(Path(root) / FOLDER / CROPS_DIR, data)}"


def _read_result(file: Path) -> tuple[tuple[int, str], tuple[str, str, str], dict]:
    when = file.stat().st_mtime_ns
    result = json.loads(file.read_bytes())
    if not isinstance(result, dict):
        raise ValueError("not a JSON object")
    ident = tuple(result[name] for name in ("model", "fingerprint", "layer"))
    if not all(isinstance(part, str) for part in ident):
        raise ValueError("model, fingerprint and layer must be strings")
    channels = result["channels"]
    if not isinstance(channels, list) or not all(isinstance(c, list) for c in channels):
        raise ValueError("channels is not a list of lists")
    return (when, file.stem), ident, {**result, "key": file.stem}


def scan(root: Path) -> dict[tuple[str, str, str], dict]:
    """The newest stored result per (model, fingerprint, layer) in the cache.

    Each value is the stored result plus ``"key"`` (the file's stem). "Newest" is
    the file written last: a layer redone with other images or another k replaces
    the old result on the site, which the old one's different key leaves in the
    cache. Files that cannot be read, or are not shaped like a result, warn and are
    skipped."""
    newest: dict[tuple[str, str, str], tuple[tuple[int, str], dict]] = {}
    for _, (order, ident, result) in records(Path(root) / FOLDER, "*.json", _read_result,
                                             warning=UnreadableExamplesWarning, what="dataset examples"):
        if ident not in newest or order > newest[ident][0]:
            newest[ident] = (order, result)
    return {ident: result for ident, (_, result) in newest.items()}


def named_crops(root: Path) -> set[Path] | None:
    """Every crop a readable result names (resolved paths); None when some result
    cannot be read, so its crops cannot be told apart from unused ones (`atlas gc`)."""
    folder = Path(root) / FOLDER
    named: set[Path] = set()
    for file in folder.glob("*.json"):
        try:
            result = json.loads(file.read_bytes())
            named.update((folder / item["crop"]).resolve() for shown in result["channels"] for item in shown)
        except FileNotFoundError:
            continue
        except (OSError, ValueError, KeyError, TypeError):
            return None
    return named
