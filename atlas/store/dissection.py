"""Stored network dissection: partial states per shard, and each layer's merged result.

Layout under the cache root, per layer key (model, weights, layer, dataset
fingerprint, quantile, mask resolution)::

    dissection/<key>/quantiles-<K>of<N>.npz   shard K's quantile sketch [C, BINS]
    dissection/<key>/thresholds.npz           merged thresholds (once every shard's sketch is in)
    dissection/<key>/counts-<K>of<N>.npz      shard K's IoU counts under those thresholds
    dissection/<key>.npz                      the merged result the site reads (`LayerDissection`)

Every file is written whole or not at all, so a killed pass leaves its shard's
file absent and the next run does that pass again; results of other keys (other
layers, datasets, settings) never mix, because the key names the folder. The
merge is a sum of counts, so it is exact. numpy only: the site reads this without torch.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

import joblib
import numpy as np

from . import arrays as arrays_file
from .files import records

DISSECTION_VERSION = 1
FOLDER = "dissection"
DETECTOR_IOU = 0.04   # Bau et al.: a unit detects its best concept when their IoU is at least this


@dataclass(frozen=True)
class Setup:
    """What decides a layer's dissection besides the model: part of its key."""
    dataset: str            # the folder as the user named it
    kind: str               # "broden", "folder" or "colors"
    fingerprint: str        # of the dataset's files
    quantile: float         # upper quantile of the threshold (0.005)
    mask_size: int          # side the activation maps are resampled to
    precision: str = "fp32" # of the forward pass


@dataclass(frozen=True)
class LayerDissection:
    """One layer's dissection, merged over every shard."""
    model: str
    fingerprint: str
    layer: str
    setup: Setup
    names: tuple[str, ...]           # concepts
    categories: tuple[str, ...]
    category_of: tuple[int, ...]     # concept -> category
    thresholds: np.ndarray           # [C]
    iou: np.ndarray                  # [C, K]
    images: int                      # images counted (unreadable ones excluded)
    skipped: int = 0

    @property
    def units(self) -> int:
        return len(self.thresholds)

    def best(self, unit: int, category: int | None = None) -> tuple[int, float]:
        """(concept, IoU) of the unit's best concept, overall or within a category."""
        scores = self.iou[unit].astype(np.float64)
        if category is not None:
            scores = np.where(np.asarray(self.category_of) == category, scores, -1.0)
        k = int(np.argmax(scores))
        return k, float(max(scores[k], 0.0))

    def detects(self, unit: int) -> int | None:
        """The concept the unit detects (best IoU >= DETECTOR_IOU), or None."""
        k, score = self.best(unit)
        return k if score >= DETECTOR_IOU else None


def layer_key(model: str, fingerprint: str, layer: str, setup: Setup) -> str:
    return joblib.hash({"model": model, "weights": fingerprint, "layer": layer, **asdict(setup),
                        "version": DISSECTION_VERSION})


def iou(intersection: np.ndarray, activation: np.ndarray, ground: np.ndarray, category_of) -> np.ndarray:
    """[C, K] I / (A[category] + G - I); 0 where the union is empty."""
    union = activation[:, np.asarray(category_of, dtype=np.int64)] + ground[None, :] - intersection
    return np.where(union > 0, intersection / np.maximum(union, 1), 0.0)


# --- partial states -------------------------------------------------------------------

def _shard_name(kind: str, shard: tuple[int, int]) -> str:
    return f"{kind}-{shard[0]}of{shard[1]}.npz"


def store_partial(root: Path, key: str, kind: str, *, shard: tuple[int, int], arrays: dict, meta: dict) -> None:
    """Shard K of N's state of one pass (kind "quantiles" or "counts")."""
    arrays_file.write(Path(root) / FOLDER / key / _shard_name(kind, shard), arrays, meta, compress=True)


def load_partial(root: Path, key: str, kind: str, shard: tuple[int, int]) -> tuple[dict, dict] | None:
    return arrays_file.load(Path(root) / FOLDER / key / _shard_name(kind, shard))


def merged_partials(root: Path, key: str, kind: str, shards: int) -> tuple[dict, dict] | None:
    """The sum of every shard's arrays (and images, skipped) once all N are stored, else None."""
    parts = [load_partial(root, key, kind, (k, shards)) for k in range(1, shards + 1)]
    if any(p is None for p in parts):
        return None
    metas = [m for m, _ in parts]
    arrays = {name: sum(a[name].astype(np.int64) for _, a in parts) for name in parts[0][1]}
    meta = {**metas[0], "images": sum(int(m.get("images", 0)) for m in metas),
            "skipped": sum(int(m.get("skipped", 0)) for m in metas)}
    return meta, arrays


def missing_shards(root: Path, key: str, kind: str, shards: int) -> list[int]:
    return [k for k in range(1, shards + 1) if not (Path(root) / FOLDER / key / _shard_name(kind, (k, shards))).exists()]


def store_thresholds(root: Path, key: str, thresholds: np.ndarray, meta: dict) -> None:
    arrays_file.write(Path(root) / FOLDER / key / "thresholds.npz", {"thresholds": thresholds.astype(np.float32)},
                      meta, compress=True)


def load_thresholds(root: Path, key: str) -> tuple[np.ndarray, dict] | None:
    found = arrays_file.load(Path(root) / FOLDER / key / "thresholds.npz")
    return None if found is None else (found[1]["thresholds"], found[0])


# --- merged results ---------------------------------------------------------------------

def store(root: Path, key: str, result: LayerDissection) -> None:
    meta = {"model": result.model, "fingerprint": result.fingerprint, "layer": result.layer,
            "setup": asdict(result.setup), "names": list(result.names), "categories": list(result.categories),
            "category_of": list(result.category_of), "images": result.images, "skipped": result.skipped,
            "version": DISSECTION_VERSION}
    arrays_file.write(Path(root) / FOLDER / f"{key}.npz", {"thresholds": result.thresholds.astype(np.float32),
                                                          "iou": result.iou.astype(np.float32)}, meta, compress=True)


def _result(path: Path) -> LayerDissection:
    meta, arrays = arrays_file.read(path)
    thresholds, scores = arrays["thresholds"], arrays["iou"]
    if scores.shape != (len(thresholds), len(meta["names"])):
        raise ValueError("iou does not match the units and concepts")
    return LayerDissection(str(meta["model"]), str(meta["fingerprint"]), str(meta["layer"]), Setup(**meta["setup"]),
                           tuple(meta["names"]), tuple(meta["categories"]), tuple(int(c) for c in meta["category_of"]),
                           thresholds, scores, int(meta["images"]), int(meta.get("skipped", 0)))


def load(root: Path, key: str) -> LayerDissection | None:
    try:
        return _result(Path(root) / FOLDER / f"{key}.npz")
    except (OSError, KeyError, ValueError, TypeError):
        return None


class UnreadableDissectionWarning(UserWarning):
    """A stored dissection could not be read; the site leaves it out."""


def scan(root: Path) -> dict[tuple[str, str, str], LayerDissection]:
    """The newest stored result per (model, fingerprint, layer)."""
    newest: dict[tuple[str, str, str], tuple[int, LayerDissection]] = {}
    for path, result in records(Path(root) / FOLDER, "*.npz", _result, warning=UnreadableDissectionWarning,
                                  what="dissection"):
        if not re.fullmatch(r"[0-9a-f]+", path.stem):
            continue
        when = path.stat().st_mtime_ns
        ident = (result.model, result.fingerprint, result.layer)
        if ident not in newest or when > newest[ident][0]:
            newest[ident] = (when, result)
    return {ident: result for ident, (_, result) in newest.items()}
