"""Rendering a plan into the cache: batches in, stored entries out.

`render_plan` renders every unit a plan still needs and hands each finished
batch to a background writer, so a build killed at any moment keeps every unit
whose entry landed. `batch_size_for` measures two probes and lets
`atlas.device` (where the batch-size policy lives) decide from them;
`estimate_seconds` times a short warm-up. `atlas.pipeline` strings these
together with the selection and the site into the one call behind `atlas build`.
"""

from __future__ import annotations

import datetime
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from ..store import cache
from ..plan import work as plans
from ..core.batches import batch_key, batches
from ..model import device as devices
from ..model.classifier import Model
from ..engine.render import Rendered, render, render_batch
from ..core.settings import RECIPE_VERSION, Settings
from ..core.units import Unit
from ..core.background import make_writer

# Learning-rate factor for the second try of a unit whose optimization diverged.
RETRY_LR_FACTOR = 0.25


@dataclass
class Summary:
    rendered: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def render_plan(model: Model, plan: plans.Plan, settings: Settings, cache_root: Path, device: torch.device,
                batch_size: int | None = None, on_batch: Callable[[int], None] = lambda n: None,
                background: bool = True, photos: dict | None = None) -> Summary:
    """Render every unit the plan still needs and store each into the cache.

    Batches are cut from the whole plan, cached units included, and every batch
    that still holds a unit to render is rendered whole: a unit's pixels depend
    (by float rounding, amplified over the steps) on which units share its batch,
    so this is what makes a resumed build store the same image bytes as one that
    was never interrupted. Cached units in such a batch are rendered again but
    not stored. That costs at most the cached units that share a batch with new
    ones: after a kill, only those of the batches it cut short.

    Storing runs on a background writer (`background=False` stores in line);
    `on_batch` is told how many units each batch finished. `photos` (digest -> image)
    feed objectives that imitate a photo (caricatures).
    """
    start = time.perf_counter()
    summary = Summary(cached=len(plan.cached))
    where = devices.describe(device)
    todo = set(plan.todo)
    # Sized from the whole plan, not what is left of it, so a resumed build cuts the same batches.
    size = batch_size or (batch_size_for(model, list(plan.keys), settings, device) if plan.todo else 1)
    # Concatenated, the chosen batches cut back into exactly themselves: only a
    # group's last batch can be short, and it stays last.
    work = [unit for batch in batches(list(plan.keys), size) if todo.intersection(batch) for unit in batch]
    with make_writer(background) as writer:
        for results in render(model, work, settings, device, size, photos):
            # Each result beside the settings it rendered under: a retry's step size is smaller.
            tried = [_retry(model, r.unit, settings, device, photos) if r.error else (r, settings)
                     for r in results if r.unit in todo]
            results = [r for r, _ in tried]
            stored = [(plan.keys[r.unit], entry_meta(model, r, used, where), [] if r.error else list(r.images))
                      for r, used in tried]
            writer.submit(lambda stored=stored: [cache.store(cache_root, *item) for item in stored])
            summary.failed += [r.unit.label for r in results if r.error]
            summary.rendered += sum(1 for r in results if not r.error)
            on_batch(len(results))
    summary.seconds = time.perf_counter() - start
    return summary


def batch_size_for(model: Model, units: list[Unit], settings: Settings, device: torch.device) -> int:
    """Images per batch: on CUDA measured by probing the plan's hungriest layer, else a fixed few.

    Two short probes of different batch sizes give the memory of one more view
    (their difference) apart from what any batch needs (cuDNN workspaces, the
    weights' casts); free memory then decides how many views fit.
    """
    if device.type != "cuda" or not units:
        return devices.default_batch_size(device, settings)
    # A truncated forward keeps every activation up to its layer for the backward
    # pass, so the deepest layer of the plan needs the most memory per view.
    deepest = max(units, key=lambda u: model.layer(u.layer).position)
    group = [u for u in units if batch_key(u) == batch_key(deepest)]
    views_per_image = settings.recipe_spec.views
    probes = [group[:max(1, devices.PROBE_UNITS // 2)], group[:devices.PROBE_UNITS]]
    measured = [(len(probe) * deepest.diversity * views_per_image, _peak_memory(model, probe, settings, device))
                for probe in probes]
    free, _ = torch.cuda.mem_get_info(device)
    return devices.batch_size_from_probes(free, measured, views_per_image)


def _peak_memory(model: Model, units: list[Unit], settings: Settings, device: torch.device) -> int:
    """Bytes of GPU memory that rendering `units` for two steps takes at its peak."""
    devices.empty_cache(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    with devices.weights_in_bf16(model.module, settings.precision):
        render_batch(model, units, settings.replace(steps=2), device)
    return torch.cuda.max_memory_allocated(device) - base


def _retry(model: Model, unit: Unit, settings: Settings, device: torch.device,
           photos: dict | None = None) -> tuple[Rendered, Settings]:
    """Render a diverged unit alone once more with a smaller learning rate; the
    result and the settings it rendered under (what its page must show)."""
    gentler = settings.replace(lr=settings.lr * RETRY_LR_FACTOR)
    return render_batch(model, [unit], gentler, device, **({"photos": photos} if photos else {}))[0], gentler


def entry_meta(model: Model, result: Rendered, settings: Settings, device: str) -> dict:
    """The metadata a unit page shows, stored beside its images (see `atlas.record`)."""
    from ..core.entry import EntryMeta

    return EntryMeta(
        unit=result.unit,
        status="failed" if result.error else "ok",
        error=result.error,
        model=model.name,
        weights=model.weights,
        fingerprint=model.fingerprint,
        settings={**settings.as_dict(), "lr": settings.lr_for(result.unit)},  # the step size it rendered at
        recipe_version=RECIPE_VERSION,
        curve=tuple(result.curve),
        final_objective=result.final_objective if not result.error else None,
        final_objectives=tuple(result.final_objectives),
        class_probability=result.class_probability,
        labels=tuple(result.labels),
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
    size = batch_size or batch_size_for(model, units, settings, device)
    total = 0.0
    for group in batches(units, 1 << 30):
        probe = group[:max(1, min(len(group), size if device.type == "cuda" else 2))]
        times = []
        with devices.weights_in_bf16(model.module, settings.precision):
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
