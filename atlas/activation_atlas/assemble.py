"""From a layer's stored samples to its activation atlas: lay out, bin, render icons, store.

    lay out  UMAP (or PCA) of the vectors, cached per samples and method
    bin      grids from coarse to fine over the same layout and samples
    icons    one "icon" unit per kept cell (its direction at the centre position),
             rendered and cached like every unit: a direction needed by two grids, or
             two builds, renders once
    store    one record per atlas: each grid's cells with their icon's cache key, top
             classes, strongest channels, a few photo patches and, where the layer has a
             stored dictionary, the features its vectors use most, for the site

A class atlas (`class_index`) keeps only the samples that push most toward one class
and lays those out alone.
"""

from __future__ import annotations

import io
import numpy as np
from PIL import Image

from ..core.errors import AtlasError
from ..core.units import Unit
from ..dictionary.label import sparse_codes, stored_dictionary, strongest
from ..model.classifier import Model
from ..pictures.render import Summary, render_plan
from ..plan import work as plans
from ..store import activation_atlas as stored
from . import grid
from .sampling import grid_cells

ICON_SIZE = 80                # px, as the reference's icons
ICON_RECIPE = "lucid"         # small jittered views keep an icon's layout at its centre
CLASS_SHARE = 0.1             # a class atlas keeps this share of the samples (at least MIN_CLASS_SAMPLES)
MIN_CLASS_SAMPLES = 100
SHOWN_CLASSES, SHOWN_CHANNELS, SHOWN_PHOTOS = 20, 6, 3
PATCH_SIDE = 64


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


def build_atlas(job, layer: str, class_index: int | None = None, on_batch=lambda n: None) -> tuple[dict, Summary]:
    """Lay out, bin, render icons and store one atlas of `layer` for `job` (an
    `atlas.activation_atlas.job.ActivationAtlasJob` whose samples are stored); returns
    the atlas's record and the icons' render summary."""
    request, root, model = job.request, job.root, job.model
    found = stored.load_samples(root, job.keys[layer])
    if found is None:
        raise AtlasError(f"no samples of {layer} are stored; the sampling pass did not run")
    meta, arrays = found
    vectors = arrays["vectors"].astype(np.float32)
    attributions = arrays.get("attributions")
    members = np.arange(len(vectors)) if class_index is None else class_samples(attributions, class_index)
    layout_key = stored.key(kind="layout", samples=job.keys[layer], method=request.layout, class_index=class_index,
                            seed=job.seed, members=len(members))
    cached = stored.load_layout(root, layout_key)
    if cached is None:
        made = grid.layout(vectors[members], request.layout, is_early(model, layer), job.seed)
        stored.store_layout(root, layout_key, made.coords, made.method)
        coords, method = made.coords, made.method
    else:
        coords, method = cached
    whiten = grid.whitening(vectors) if (request.whiten == "on" or (request.whiten == "auto" and is_deep(model, layer))) \
        else None
    levels = request.levels or grid.default_levels(len(members), request.min_count)
    icon_settings = job.settings.replace(size=ICON_SIZE, steps=request.icon_steps, class_steps=None,
                                         recipe=ICON_RECIPE)
    chosen_vectors = vectors[members]
    chosen_attributions = attributions[members] if attributions is not None else None
    grids, units = [], {}
    for size in levels:
        cells = grid.bin_samples(coords, chosen_vectors, chosen_attributions, size=size, min_count=request.min_count)
        grids.append((size, cells))
        for cell in cells:
            unit = Unit(layer, 0, "icon", params={"direction": grid.direction(cell.mean, whiten),
                                                  "power": float(request.power)})
            units[(size, cell.row, cell.column)] = unit
    work = list(dict.fromkeys(units.values()))
    plan = plans.make_plan(model, work, icon_settings, root)
    summary = render_plan(model, plan, icon_settings, job.runtime, root=root, on_batch=on_batch)
    patches = _patches(job, chosen_vectors, arrays, members, grids)
    # The layer's dictionary, where one is stored (this build's, or an earlier one's): each
    # cell named by the features its vectors use most.
    dictionary = stored_dictionary(root, model.name, model.fingerprint, layer)
    codes = sparse_codes(dictionary.dictionary, chosen_vectors) if dictionary else None
    features = {} if codes is None else {
        (size, cell.row, cell.column): strongest(codes, cell.members, dictionary.dictionary.shape.size)
        for size, cells in grids for cell in cells}
    record = {
        "model": model.name, "fingerprint": model.fingerprint, "layer": layer, "class_index": class_index,
        "dataset": str(job.source.root), "images": int(meta.get("images", 0)), "skipped": int(meta.get("skipped", 0)),
        "samples": int(len(members)), "all_samples": int(len(vectors)), "positions": request.positions,
        "layout": method, "whitened": whiten is not None, "power": request.power, "min_count": request.min_count,
        "icon_size": ICON_SIZE, "icon_steps": request.icon_steps,
        "dictionary": dictionary.key if dictionary else None,
        "levels": [{"size": size, "cells": [_cell_record(cell, plan.keys[units[(size, cell.row, cell.column)]],
                                                         patches.get((size, cell.row, cell.column), []),
                                                         features.get((size, cell.row, cell.column)))
                                            for cell in cells]}
                   for size, cells in grids],
    }
    name = stored.key(kind="atlas", samples=job.keys[layer], layout=layout_key, levels=list(levels),
                      min_count=request.min_count, class_index=class_index, power=request.power,
                      whiten=whiten is not None, icons=icon_settings.as_dict(),
                      dictionary=dictionary.key if dictionary else None)
    stored.store(root, name, record)
    return record, summary


def _cell_record(cell: grid.Cell, icon: str, patches: list, features: list | None) -> dict:
    record = {"row": cell.row, "column": cell.column, "count": cell.count, "icon": icon,
              "classes": [[c, round(a, 5)] for c, a in grid.top(cell.attribution, SHOWN_CLASSES)],
              "channels": [[c, round(v, 4)] for c, v in grid.top(cell.mean, SHOWN_CHANNELS)],
              "photos": patches}
    if features is not None:   # [[feature, mean code], ...] of the layer's dictionary
        record["features"] = features
    return record


def _patches(job, vectors: np.ndarray, arrays: dict, members: np.ndarray, grids) -> dict:
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
