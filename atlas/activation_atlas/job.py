"""An activation atlas of some layers from a folder of photos: sample, lay out, bin, render, store.

    sample   `AtlasSampler` rides on the dataset pass (`atlas.passes`): seeded positions
             of the chosen photos, vectors and attributions, stored per layer
    lay out  UMAP (or PCA) of the vectors, cached per samples and method
    bin      grids from coarse to fine over the same layout and samples
    icons    one "icon" unit per kept cell (its direction at the centre position),
             rendered and cached like every unit: a direction needed by two grids, or
             two builds, renders once
    store    one record per atlas: each grid's cells with their icon's cache key, top
             classes, strongest channels and a few photo patches, for the site

A class atlas (`class_index`) keeps only the samples that push most toward one class
and lays those out alone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..plan import work as plans
from ..pictures.render import Summary, render_plan
from ..core.errors import AtlasError
from ..model.classifier import Model
from ..core.settings import Settings
from ..store import activation_atlas as stored
from ..core.units import Unit
from . import grid
from .sampling import AtlasSampler, grid_cells

DEFAULT_POSITIONS = 4         # samples per photo
DEFAULT_MIN_COUNT = 5         # a cell needs this many samples to get an icon
DEFAULT_POWER = 3.0           # of the cosine in an icon's objective (the reference uses 2 to 4)
ICON_SIZE = 80                # px, as the reference's icons
ICON_RECIPE = "lucid"         # small jittered views keep an icon's layout at its centre
CLASS_SHARE = 0.1             # a class atlas keeps this share of the samples (at least MIN_CLASS_SAMPLES)
MIN_CLASS_SAMPLES = 100
SHOWN_CLASSES, SHOWN_CHANNELS, SHOWN_PHOTOS = 20, 6, 3
PATCH_SIDE = 64


@dataclass(frozen=True)
class AtlasRequest:
    """What a build asks of the activation atlas."""
    folder: Path
    layers: tuple[str, ...]
    positions: int = DEFAULT_POSITIONS
    samples: int | None = None        # most samples kept per layer (None: every photo's positions)
    seed: int = 0
    layout: str = "umap"
    levels: tuple[int, ...] | None = None
    min_count: int = DEFAULT_MIN_COUNT
    class_index: int | None = None    # also a class atlas of the deepest layer
    icon_steps: int = 256
    power: float = DEFAULT_POWER
    whiten: str = "auto"              # "auto": on the deeper half of the network; "on"; "off"


def chosen_photos(count: int, request: AtlasRequest) -> set[int] | None:
    """The photos that give samples: all of them, or a seeded choice within the sample budget."""
    if request.samples is None or count * request.positions <= request.samples:
        return None
    rng = np.random.default_rng(request.seed)
    return set(int(i) for i in rng.choice(count, max(1, request.samples // request.positions), replace=False))


def samples_key(model: Model, layer: str, source, request: AtlasRequest, precision: str) -> str:
    return stored.key(kind="samples", model=model.name, weights=model.fingerprint, layer=layer,
                      dataset=source.fingerprint(), positions=request.positions, samples=request.samples,
                      seed=request.seed, precision=precision, size=model.input_size)


@dataclass
class AtlasJob:
    model: Model
    source: object
    request: AtlasRequest
    root: Path
    precision: str
    keys: dict[str, str]

    def sampler(self) -> AtlasSampler | None:
        missing = [layer for layer, key in self.keys.items() if stored.load_samples(self.root, key) is None]
        if not missing:
            return None
        return AtlasSampler(self.model, missing, self.request.positions, self.request.seed,
                            chosen_photos(len(self.source), self.request), self.precision)

    def finish_samples(self, sampler: AtlasSampler | None, report) -> None:
        if sampler is None:
            return
        for layer in sampler.layers:
            arrays = sampler.arrays(layer)
            if not arrays:
                raise AtlasError(f"--activation-atlas {self.source.root}: no readable photo gave a sample")
            meta = {"model": self.model.name, "fingerprint": self.model.fingerprint, "layer": layer,
                    "dataset": str(self.source.root), "images": report.images, "skipped": len(report.skipped),
                    "names": {str(i): self.source.name(int(i)) for i in np.unique(arrays["images"])}}
            stored.store_samples(self.root, self.keys[layer], arrays, meta)


def atlas_job(model: Model, source, request: AtlasRequest, root: Path, precision: str = "fp32") -> AtlasJob:
    for layer in request.layers:
        if not model.layer(layer).layout.spatial:
            raise AtlasError(f"an activation atlas needs a layer with positions; {layer} is flat")
    keys = {layer: samples_key(model, layer, source, request, precision) for layer in request.layers}
    return AtlasJob(model, source, request, Path(root), precision, keys)


# --- from samples to an atlas -------------------------------------------------------------

def is_early(model: Model, layer: str) -> bool:
    """The first fifth of the network's layers: UMAP takes more neighbours and euclidean distance there."""
    return model.layer(layer).position < 0.2 * max(l.position for l in model.layers)


def is_deep(model: Model, layer: str) -> bool:
    return model.layer(layer).position >= 0.5 * max(l.position for l in model.layers)


def class_samples(attributions: np.ndarray, class_index: int) -> np.ndarray:
    """Indices of the samples that push most toward `class_index`."""
    scores = attributions[:, class_index].astype(np.float64)
    keep = max(MIN_CLASS_SAMPLES, int(round(CLASS_SHARE * len(scores))))
    return np.sort(np.argsort(-scores, kind="stable")[:min(keep, len(scores))])


def build_atlas(job: AtlasJob, layer: str, settings: Settings, device, class_index: int | None = None,
                on_batch=lambda n: None) -> tuple[dict, Summary]:
    """Lay out, bin, render icons and store one atlas of `layer`; returns its record and
    the icons' render summary."""
    request, root, model = job.request, job.root, job.model
    found = stored.load_samples(root, job.keys[layer])
    if found is None:
        raise AtlasError(f"no samples of {layer} are stored; the sampling pass did not run")
    meta, arrays = found
    vectors = arrays["vectors"].astype(np.float32)
    attributions = arrays.get("attributions")
    members = np.arange(len(vectors)) if class_index is None else class_samples(attributions, class_index)
    layout_key = stored.key(kind="layout", samples=job.keys[layer], method=request.layout, class_index=class_index,
                            seed=request.seed, members=len(members))
    cached = stored.load_layout(root, layout_key)
    if cached is None:
        made = grid.layout(vectors[members], request.layout, is_early(model, layer), request.seed)
        stored.store_layout(root, layout_key, made.coords, made.method)
        coords, method = made.coords, made.method
    else:
        coords, method = cached
    whiten = grid.whitening(vectors) if (request.whiten == "on" or (request.whiten == "auto" and is_deep(model, layer))) \
        else None
    levels = request.levels or grid.default_levels(len(members), request.min_count)
    icon_settings = settings.replace(size=ICON_SIZE, steps=request.icon_steps, recipe=ICON_RECIPE)
    chosen_vectors = vectors[members]
    chosen_attributions = attributions[members] if attributions is not None else None
    grids, units = [], {}
    for size in levels:
        cells = grid.bin_samples(coords, chosen_vectors, chosen_attributions, size, request.min_count)
        grids.append((size, cells))
        for cell in cells:
            unit = Unit(layer, 0, "icon", params={"direction": grid.direction(cell.mean, whiten),
                                                  "power": float(request.power)})
            units[(size, cell.row, cell.column)] = unit
    work = list(dict.fromkeys(units.values()))
    plan = plans.make_plan(model, work, icon_settings, root)
    summary = render_plan(model, plan, icon_settings, root, device, on_batch=on_batch)
    patches = _patches(job, chosen_vectors, arrays, members, grids)
    record = {
        "model": model.name, "fingerprint": model.fingerprint, "layer": layer, "class_index": class_index,
        "dataset": str(job.source.root), "images": int(meta.get("images", 0)), "skipped": int(meta.get("skipped", 0)),
        "samples": int(len(members)), "all_samples": int(len(vectors)), "positions": request.positions,
        "layout": method, "whitened": whiten is not None, "power": request.power, "min_count": request.min_count,
        "icon_size": ICON_SIZE, "icon_steps": request.icon_steps,
        "levels": [{"size": size, "cells": [_cell_record(cell, plan.keys[units[(size, cell.row, cell.column)]],
                                                         patches.get((size, cell.row, cell.column), []))
                                            for cell in cells]}
                   for size, cells in grids],
    }
    name = stored.key(kind="atlas", samples=job.keys[layer], layout=layout_key, levels=list(levels),
                      min_count=request.min_count, class_index=class_index, power=request.power,
                      whiten=whiten is not None, icons=icon_settings.as_dict())
    stored.store(root, name, record)
    return record, summary


def _cell_record(cell: grid.Cell, icon: str, patches: list) -> dict:
    return {"row": cell.row, "column": cell.column, "count": cell.count, "icon": icon,
            "classes": [[c, round(a, 5)] for c, a in grid.top(cell.attribution, SHOWN_CLASSES)],
            "channels": [[c, round(v, 4)] for c, v in grid.top(cell.mean, SHOWN_CHANNELS)],
            "photos": patches}


def _patches(job: AtlasJob, vectors: np.ndarray, arrays: dict, members: np.ndarray, grids) -> dict:
    """A few photo patches per cell: its samples (`vectors`, the rows of `members`) nearest
    the cell's mean, cut around the sampled position and stored once by content. Each
    photo is decoded once and dropped when its patches are cut."""
    images, where = arrays["images"][members], arrays["where"][members]
    side = job.model.input_size
    wanted: dict[tuple, list[int]] = {}
    for size, cells in grids:
        for cell in cells:
            mine = vectors[cell.members]
            similarity = mine @ cell.mean / (np.linalg.norm(mine, axis=1) * np.linalg.norm(cell.mean) + 1e-9)
            wanted[(size, cell.row, cell.column)] = [int(cell.members[i]) for i in np.argsort(-similarity)[:SHOWN_PHOTOS]]
    by_image: dict[int, list[int]] = {}
    for sample in sorted({s for samples in wanted.values() for s in samples}):
        by_image.setdefault(int(images[sample]), []).append(sample)
    patch_of: dict[int, list] = {}
    for image, samples in by_image.items():
        pixels = job.source.load(image).pixels
        for sample in samples:
            y, x = grid_cells(where[sample][None], side, side)[0]
            top, left = (int(np.clip(v - PATCH_SIDE // 2, 0, side - PATCH_SIDE)) for v in (y, x))
            buffer = io.BytesIO()
            Image.fromarray(pixels[top:top + PATCH_SIDE, left:left + PATCH_SIDE]).save(buffer, format="JPEG", quality=85)
            patch_of[sample] = [job.source.name(image), stored.store_crop(job.root, buffer.getvalue())]
    return {key: [patch_of[s] for s in samples] for key, samples in wanted.items()}
