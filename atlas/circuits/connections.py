"""The connections step of a build: which layer pairs a page links, computed once each.

Consecutive rendered layers (in forward order) with channel units are linked,
and the deepest rendered conv layer is linked to the class logits when class
units are rendered. Each pair's expanded weights (`atlas.circuits`) are cached
per (model weights, pair) in `atlas.store.circuits`; a pair the method does not
apply to is cached with the reason, which the layer page shows.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core import layouts
from .weights import MAX_WINDOW, MIN_MAP, expanded_weights, linearized, strides
from ..core.kinds import Page
from ..model.classifier import Model
from ..model.runtime import Runtime
from ..model.spec import family_of
from ..store import circuits as stored
from ..store.circuits import Pair


def pair_key(model: Model, source: str, target: str) -> str:
    return stored.pair_key(model.name, model.fingerprint, source, target,
                           settings={"max_window": MAX_WINDOW, "min_map": MIN_MAP})


def skip_reason(model: Model, source: str, target: str) -> str:
    """Why expanded weights do not apply to a pair ("" when they do)."""
    if family_of(model.module).blocks:
        return "connections are computed for convnets only: attention and layer norm are not linear"
    src, dst = model.layer(source), model.layer(target)
    if src.layout != layouts.NCHW:
        return f"{source} is a {src.layout} layer; connections need conv maps"
    if dst.layout not in (layouts.NCHW, layouts.FLAT):
        return f"{target} is a {dst.layout} layer; connections need conv maps"
    if src.position >= dst.position:
        return f"{source} does not come before {target}"
    return ""


def rendered_pairs(model: Model, units) -> list[tuple[str, str]]:
    """Consecutive rendered layers (by forward order) with channel units, and the deepest
    rendered conv layer to the class logits when class units are rendered."""
    layers = sorted({u.layer for u in units if not u.kind.is_class and u.kind.page == Page.UNIT},
                    key=lambda name: model.layer(name).position)
    pairs = list(zip(layers, layers[1:]))
    convs = [name for name in layers if model.layer(name).kind == "conv"]
    if convs and any(u.kind.is_class for u in units):
        pairs.append((convs[-1], model.output_layer))
    return pairs


def connect(model: Model, pairs: list[tuple[str, str]], *, root: Path, runtime: Runtime,
            chunk: int | None = None, on_failure=lambda source, target, error: None) -> tuple[int, float]:
    """Compute and cache every pair not cached yet; return (pairs computed, seconds).

    A pair whose copy fails to run (a model this module cannot linearize in some way)
    is told to `on_failure` and left uncached, so the build its units rendered for goes
    on, and a later run tries that pair again."""
    todo = [(s, t, pair_key(model, s, t)) for s, t in pairs]
    todo = [(s, t, k) for s, t, k in todo if stored.load(root, k) is None]
    if not todo:
        return 0, 0.0
    start, computed = time.perf_counter(), 0
    device = runtime.device
    net = linearized(model.module).to(device).float()
    stride = strides(model, net, device) if any(not skip_reason(model, s, t) for s, t, _ in todo) else {}
    for source, target, key in todo:
        reason = skip_reason(model, source, target)
        try:
            pair = (_skipped(model, source, target, reason) if reason else
                    expanded_weights(model, net, source, target, device=device,
                                     chunk=chunk or (256 if device.type == "cuda" else 128), stride=stride))
        except RuntimeError as err:
            on_failure(source, target, str(err).splitlines()[0])
            continue
        stored.store(root, key, pair)
        computed += 1
    return computed, time.perf_counter() - start


def _skipped(model: Model, source: str, target: str, reason: str) -> Pair:
    none = np.zeros((0, 0), np.float32)
    return Pair(source, target, none, none, np.zeros((0, 0, 0, 0), np.float16), skipped=reason,
                model=model.name, fingerprint=model.fingerprint)
