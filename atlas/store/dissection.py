"""Stored network dissection: partial states per shard, and each layer's merged result.

Layout under the cache root, per layer key (model, weights, layer, dataset
fingerprint, quantile, mask resolution)::

    dissection/<key>/quantiles-<K>of<N>.npz   shard K's quantile sketch [C, BINS]
    dissection/<key>/thresholds.npz           merged thresholds, each unit's value band and dead flag
    dissection/<key>/counts-<K>of<N>.npz      shard K's IoU counts under those thresholds, per half [2, ...]
    dissection/<key>.npz                      the merged result the site reads (`LayerDissection`)

Confirmation on held-out photos: the IoU pass keeps each count twice over, once per
half of the images (a fixed seeded split of each image's index,
`atlas.dissection.confirm`), so a unit *detects* a concept only when that concept is
its best on both halves and reaches DETECTOR_IOU on each: the concept is chosen on
one half and checked on photos that did not choose it. The whole-set counts are the
halves' sum, and pages show the whole-set IoU beside the two halves' (why the halves
and not a bootstrap interval: `atlas.dissection.confirm`).

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

DISSECTION_VERSION = 2   # 2: per-half counts (confirmation), value bands and dead units
FOLDER = "dissection"
DETECTOR_IOU = 0.04   # Bau et al.: a unit detects its best concept when their IoU is at least this
# Below this many photos pages say "too few photos to confirm a detector" instead of a count:
# on fewer, 1 to 9 % of random units pass both halves by chance (`atlas.dissection.confirm`).
MIN_IMAGES = 200
# A unit whose every activation stays within +-DEAD_EPS, or inside one bin of its quantile sketch
# (1/64 of its size), is dead: its top-quantile region is noise, never a concept.
DEAD_EPS = 1e-6


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
    halves: np.ndarray | None = None                 # [2, C, K] IoU on each half; None: stored before version 2
    half_images: tuple[int, int] | None = None       # images in each half
    low: np.ndarray | None = None                    # [C] every activation of the unit is >= low ...
    high: np.ndarray | None = None                   # [C] ... and < high (its quantile sketch's band)
    dead: np.ndarray | None = None                   # [C] bool: the band is too narrow to mean anything

    @property
    def units(self) -> int:
        return len(self.thresholds)

    @property
    def enough_images(self) -> bool:
        """Whether a confirmed detector can be trusted at all (MIN_IMAGES)."""
        return self.images >= MIN_IMAGES

    def best(self, unit: int, category: int | None = None, half: int | None = None) -> tuple[int, float]:
        """(concept, IoU) of the unit's best concept, overall or within a category, on the
        whole set or on one half (0 or 1; IoU 0 where the halves were not stored)."""
        if half is not None and self.halves is None:
            return 0, 0.0
        scores = (self.iou if half is None else self.halves[half])[unit].astype(np.float64)
        if category is not None:
            scores = np.where(np.asarray(self.category_of) == category, scores, -1.0)
        k = int(np.argmax(scores))
        return k, float(max(scores[k], 0.0))

    def is_dead(self, unit: int) -> bool:
        return bool(self.dead[unit]) if self.dead is not None else False

    def passes_whole_set(self, unit: int) -> int | None:
        """The concept the unit would detect by the whole-set rule alone (Bau et al.'s), or None."""
        k, score = self.best(unit)
        return k if score >= DETECTOR_IOU and not self.is_dead(unit) else None

    def detects(self, unit: int) -> int | None:
        """The concept the unit detects: its best on both halves, with IoU >= DETECTOR_IOU on
        each, and the unit not dead; None otherwise (and for records without halves)."""
        if self.halves is None or self.is_dead(unit):
            return None
        k = int(confirmed_concepts(self.halves[:, unit:unit + 1])[0])
        return k if k >= 0 else None

    def finding(self, unit: int) -> "Finding":
        """What pages say of a unit: its detected concept (else its whole-set best), whole-set
        and per-half IoU of that concept, whether confirmed, dead, and the photos behind it."""
        confirmed = self.detects(unit)
        k = confirmed if confirmed is not None else self.best(unit)[0]
        halves = None if self.halves is None else (float(self.halves[0, unit, k]), float(self.halves[1, unit, k]))
        band = None if self.low is None else (float(self.low[unit]), float(self.high[unit]))
        return Finding(k, float(self.iou[unit, k]), halves, confirmed is not None, self.is_dead(unit), band,
                       self.images, self.half_images)


@dataclass(frozen=True)
class Finding:
    """One unit's dissection as a reader should weigh it."""
    concept: int
    iou: float                                # whole set
    halves: tuple[float, float] | None        # the same concept's IoU on each half
    confirmed: bool                           # best on both halves, >= DETECTOR_IOU on each
    dead: bool
    band: tuple[float, float] | None          # every activation lies in [low, high)
    images: int
    half_images: tuple[int, int] | None


def confirmed_concepts(halves: np.ndarray) -> np.ndarray:
    """[C] from per-half IoU [2, C, K]: the concept that is each unit's best on both halves and
    reaches DETECTOR_IOU on each, or -1."""
    first, second = np.asarray(halves[0], np.float64), np.asarray(halves[1], np.float64)
    a, b = first.argmax(1), second.argmax(1)
    rows = np.arange(len(a))
    ok = (a == b) & (first[rows, a] >= DETECTOR_IOU) & (second[rows, b] >= DETECTOR_IOU)
    return np.where(ok, a, -1)


def dead_units(result: LayerDissection) -> list[int]:
    """The units of a layer marked dead (none for records stored before dead units were)."""
    return [] if result.dead is None else [int(u) for u in np.flatnonzero(result.dead)]


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


def store_thresholds(root: Path, key: str, thresholds: np.ndarray, meta: dict, *, bands: dict | None = None) -> None:
    """The merged thresholds, and `bands` ({"low", "high", "dead"}: [C] each) beside them."""
    arrays = {"thresholds": thresholds.astype(np.float32), **(bands or {})}
    arrays_file.write(Path(root) / FOLDER / key / "thresholds.npz", arrays, meta, compress=True)


def load_thresholds(root: Path, key: str) -> tuple[np.ndarray, dict] | None:
    found = arrays_file.load(Path(root) / FOLDER / key / "thresholds.npz")
    return None if found is None else (found[1]["thresholds"], found[0])


def load_bands(root: Path, key: str) -> dict:
    """{"low", "high", "dead"} stored beside the thresholds ({} when absent)."""
    found = arrays_file.load(Path(root) / FOLDER / key / "thresholds.npz")
    return {} if found is None else {k: v for k, v in found[1].items() if k in ("low", "high", "dead")}


# --- merged results ---------------------------------------------------------------------

def store(root: Path, key: str, result: LayerDissection) -> None:
    meta = {"model": result.model, "fingerprint": result.fingerprint, "layer": result.layer,
            "setup": asdict(result.setup), "names": list(result.names), "categories": list(result.categories),
            "category_of": list(result.category_of), "images": result.images, "skipped": result.skipped,
            "half_images": None if result.half_images is None else list(result.half_images),
            "version": DISSECTION_VERSION}
    arrays = {"thresholds": result.thresholds.astype(np.float32), "iou": result.iou.astype(np.float32)}
    for name in ("halves", "low", "high"):
        if getattr(result, name) is not None:
            arrays[name] = getattr(result, name).astype(np.float32)
    if result.dead is not None:
        arrays["dead"] = result.dead.astype(bool)
    arrays_file.write(Path(root) / FOLDER / f"{key}.npz", arrays, meta, compress=True)


def _result(path: Path) -> LayerDissection:
    """A stored result; one from before version 2 reads with no halves (unconfirmed) and no bands."""
    meta, arrays = arrays_file.read(path)
    thresholds, scores = arrays["thresholds"], arrays["iou"]
    units = len(thresholds)
    if scores.shape != (units, len(meta["names"])):
        raise ValueError("iou does not match the units and concepts")
    halves = arrays.get("halves")
    if halves is not None and halves.shape != (2, *scores.shape):
        raise ValueError("halves do not match the units and concepts")
    if any(arrays[name].shape != (units,) for name in ("low", "high", "dead") if name in arrays):
        raise ValueError("bands do not match the units")
    split = meta.get("half_images")
    return LayerDissection(str(meta["model"]), str(meta["fingerprint"]), str(meta["layer"]), Setup(**meta["setup"]),
                           tuple(meta["names"]), tuple(meta["categories"]), tuple(int(c) for c in meta["category_of"]),
                           thresholds, scores, int(meta["images"]), int(meta.get("skipped", 0)), halves,
                           None if split is None else (int(split[0]), int(split[1])),
                           arrays.get("low"), arrays.get("high"),
                           None if "dead" not in arrays else arrays["dead"].astype(bool))


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
