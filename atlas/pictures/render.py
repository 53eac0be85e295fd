"""Rendering a plan into the cache: batches in, stored entries out.

`render_plan` renders every unit a plan still needs and hands each finished
batch to a background writer, so a build killed at any moment keeps every unit
whose entry landed. A unit whose optimization diverged is tried once more alone
at a smaller step; the entry records the step it rendered at.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from ..core.background import make_writer
from ..core.batches import batches
from ..core.entry import EntryMeta
from ..core.settings import RECIPE_VERSION, Settings
from ..core.units import Unit
from ..engine.batching import batch_size_for, render
from ..engine.render import Rendered, render_batch
from ..model.classifier import Model
from ..model.runtime import Runtime
from ..plan import work as plans
from ..store import cache

# Learning-rate factor for the second try of a unit whose optimization diverged.
RETRY_LR_FACTOR = 0.25


@dataclass
class Summary:
    rendered: int = 0
    cached: int = 0
    failed: list[str] = field(default_factory=list)
    seconds: float = 0.0


def render_plan(model: Model, plan: plans.Plan, settings: Settings, runtime: Runtime, *, root: Path,
                on_batch: Callable[[int], None] = lambda n: None, background: bool = True,
                photos: dict | None = None) -> Summary:
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
    todo = set(plan.todo)
    # Sized from the whole plan, not what is left of it, so a resumed build cuts the same batches.
    size = batch_size_for(model, list(plan.keys), settings, runtime) if plan.todo else 1
    # Concatenated, the chosen batches cut back into exactly themselves: only a
    # group's last batch can be short, and it stays last.
    work = [unit for batch in batches(list(plan.keys), size) if todo.intersection(batch) for unit in batch]
    with make_writer(background) as writer:
        for results in render(model, work, settings, replace(runtime, batch_size=size), photos=photos):
            # Each result beside the settings it rendered under: a retry's step size is smaller.
            tried = [_retry(model, r.unit, settings, runtime, photos) if r.error else (r, settings)
                     for r in results if r.unit in todo]
            results = [r for r, _ in tried]
            stored = [(plan.keys[r.unit], entry_meta(model, r, used, runtime.where), [] if r.error else list(r.images))
                      for r, used in tried]
            writer.submit(lambda stored=stored: [cache.store(root, *item) for item in stored])
            summary.failed += [r.unit.label for r in results if r.error]
            summary.rendered += sum(1 for r in results if not r.error)
            on_batch(len(results))
    summary.seconds = time.perf_counter() - start
    return summary


def _retry(model: Model, unit: Unit, settings: Settings, runtime: Runtime,
           photos: dict | None = None) -> tuple[Rendered, Settings]:
    """Render a diverged unit alone once more with a smaller learning rate; the
    result and the settings it rendered under (what its page must show)."""
    gentler = settings.replace(lr=settings.lr * RETRY_LR_FACTOR)
    return render_batch(model, [unit], gentler, runtime, photos=photos)[0], gentler


def entry_meta(model: Model, result: Rendered, settings: Settings, device: str) -> dict:
    """The metadata a unit page shows, stored beside its images (see `atlas.record`)."""
    return EntryMeta(
        unit=result.unit,
        status="failed" if result.error else "ok",
        error=result.error,
        model=model.name,
        weights=model.weights,
        fingerprint=model.fingerprint,
        # what it rendered under: its kind's steps, and the step size it took
        settings={**settings.for_unit(result.unit).as_dict(), "lr": settings.lr_for(result.unit)},
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
