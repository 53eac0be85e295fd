"""A build: select units, skip the cached ones, render the rest, store each batch.

This is the library behind `atlas build`; a notebook can call `select_units`
and `render_plan` directly. Results are stored batch by batch, so a build
killed at any moment keeps every finished unit.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from . import cache, plan as plans
from . import device as devices
from .errors import AtlasError
from .models import Model
from .optvis.render import Rendered, render, render_batch
from .presets import reference_classes, reference_units
from .settings import RECIPE_VERSION, Settings
from .units import Unit

# Learning-rate factor for the second try of a unit whose optimization diverged.
RETRY_LR_FACTOR = 0.25


@dataclass(frozen=True)
class Selection:
    """Which units a build covers; see `atlas build --help` for each field."""
    layers: str | None = None  # comma-separated names or globs; None = every conv layer; "none"
    channels: int | None = None  # the first N channels of each layer; None = all, 0 = none
    classes: str = "all"  # "all", "reference", "none" or indices/ranges like 1,3,10-20
    units: tuple[str, ...] = ()  # extra LAYER:INDEX units, or "reference" for the reference table
    objective: str = "channel"  # channel or neuron, for conv units
    class_objective: str = "logit"  # logit or prob, for class units
    negative: bool = False  # also render each unit's negative
    diversity: int = 1  # > 1: also render that many diverse images of each unit


def select_units(model: Model, selection: Selection) -> list[Unit]:
    if selection.objective not in ("channel", "neuron", "deepdream"):
        raise AtlasError(f"unit objective must be channel, neuron or deepdream, not {selection.objective!r}")
    pairs: list[tuple[str, int]] = []
    if selection.channels != 0 and selection.layers != "none":
        for layer in model.select_layers(selection.layers):
            pairs += [(layer.name, i) for i in range(min(layer.channels, selection.channels or layer.channels))]
    for spec in selection.units:
        pairs += reference_units(model) if spec == "reference" else [plans.parse_unit(model, spec)]

    classes = _classes(model, selection.classes)
    base = [Unit(layer, i, selection.objective) for layer, i in dict.fromkeys(pairs)]
    base += [Unit(model.output_layer, i, selection.class_objective) for i in classes]
    if not base:
        raise AtlasError("nothing selected: give --layers, --units or --classes")
    units = list(base)
    if selection.negative:
        units += [Unit(u.layer, u.index, u.objective, negative=True) for u in base]
    if selection.diversity > 1:
        units += [Unit(u.layer, u.index, u.objective, diversity=selection.diversity) for u in base]
    return units


def _classes(model: Model, spec: str) -> list[int]:
    outputs = model.layer(model.output_layer).channels
    spec = (spec or "none").strip().lower()
    if spec == "none":
        return []
    if spec == "all":
        return list(range(outputs))
    if spec == "reference":
        return reference_classes(model)
    return plans.parse_indices(spec, outputs, "class")


@dataclass
class Summary:
    rendered: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def render_plan(model: Model, plan: plans.Plan, settings: Settings, cache_root: Path, device: torch.device,
                batch_size: int | None = None, on_batch: Callable[[int], None] = lambda n: None) -> Summary:
    """Render every unit the plan still needs and store each into the cache.

    Batches are cut from the whole plan, cached units included, and every batch
    that still holds a unit to render is rendered whole: a unit's pixels depend
    (by float rounding, amplified over the steps) on which units share its batch,
    so this is what makes a resumed build store the same image bytes as one that
    was never interrupted. Cached units in such a batch are rendered again but
    not stored. That costs at most the cached units that share a batch with new
    ones: after a kill, only those of the batch it cut short while storing.
    """
    start = time.perf_counter()
    summary = Summary(cached=len(plan.cached))
    where = devices.describe(device)
    todo = set(plan.todo)
    size = batch_size or devices.default_batch_size(device, settings)
    # Concatenated, the chosen batches cut back into exactly themselves: only a
    # group's last batch can be short, and it stays last.
    work = [unit for batch in plans.batches(list(plan.keys), size) if todo.intersection(batch) for unit in batch]
    for results in render(model, work, settings, device, size):
        results = [result for result in results if result.unit in todo]
        for result in results:
            if result.error:
                result = _retry(model, result.unit, settings, device)
            meta = entry_meta(model, result, settings, where)
            cache.store(cache_root, plan.keys[result.unit], meta, [] if result.error else list(result.images))
            if result.error:
                summary.failed.append(result.unit.label)
            else:
                summary.rendered += 1
        on_batch(len(results))
    summary.seconds = time.perf_counter() - start
    return summary


def _retry(model: Model, unit: Unit, settings: Settings, device: torch.device) -> Rendered:
    """Render a diverged unit alone once more with a smaller learning rate."""
    gentler = settings.replace(lr=settings.lr * RETRY_LR_FACTOR)
    return render_batch(model, [unit], gentler, device)[0]


def entry_meta(model: Model, result: Rendered, settings: Settings, device: str) -> dict:
    """The metadata a unit page shows, stored beside its images (see `atlas.record`)."""
    from .record import EntryMeta

    return EntryMeta(
        unit=result.unit,
        status="failed" if result.error else "ok",
        error=result.error,
        model=model.name,
        weights=model.weights,
        fingerprint=model.fingerprint,
        settings=settings.as_dict(),
        recipe_version=RECIPE_VERSION,
        curve=tuple(result.curve),
        final_objective=result.final_objective if not result.error else None,
        final_objectives=tuple(result.final_objectives),
        class_probability=result.class_probability,
        seconds=result.seconds,
        device=device,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
    ).to_dict()


def estimate_seconds(model: Model, units: list[Unit], settings: Settings, device: torch.device,
                     batch_size: int | None = None) -> float:
    """Time to render `units`, from a short timed warm-up of each batch group.

    Each group runs a few images for 2 and for 4 steps; the difference is the
    cost of a step without the fixed set-up, which is then scaled up linearly
    in images and steps (throughput per image is flat in batch size on CPU and
    rises on GPU, so on GPU probes use a full batch).
    """
    size = batch_size or devices.default_batch_size(device, settings)
    total = 0.0
    for group in plans.batches(units, 1 << 30):
        probe = group[:max(1, min(len(group), size if device.type == "cuda" else 2))]
        times = []
        for steps in (2, 4):
            tick = time.perf_counter()
            render_batch(model, probe, settings.replace(steps=steps), device)
            _synchronize(device)
            times.append(time.perf_counter() - tick)
        per_step = max(times[1] - times[0], 1e-6) / 2
        batches_needed = math.ceil(len(group) / len(probe))
        total += batches_needed * (per_step * settings.steps + max(times[0] - 2 * per_step, 0))
    return total


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
