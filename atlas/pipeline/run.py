"""One build as one call: a request record in, a rendered cache and a site out.

    request ──► runtime (the hardware, decided once) ──► model on the device
            ──► selection + settings (a preset filled in under the user's options)
            ──► the dataset features' jobs (every folder opened and checked now)
            ──► plan (minus cached units) ──► render + store
            ──► the dataset passes ──► connections ──► caricatures ──► site

`run_build(BuildRequest("vgg16"))` is what `atlas build vgg16` does; the CLI
only parses options into the request and shows what the `Reporter` is told.
The GPU check, the benchmarks and a notebook make the same call.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..caricatures import job as caricatures
from ..circuits.connections import connect, rendered_pairs
from ..core.settings import Settings
from ..core.text import format_duration, plural
from ..core.units import Unit
from ..data import passes
from ..data.passes import DatasetContext
from ..model import distributed
from ..model.classifier import Model, to_device
from ..model.loading import load_model
from ..model.runtime import Runtime, resolve_runtime
from ..pictures import top_classes
from ..pictures.estimate import estimate_seconds
from ..pictures.render import Summary, render_plan
from ..plan import work as plans
from ..plan.selection import select_units
from ..site.write import publish as publish_site
from ..store import cache
from .datasets import dataset_jobs
from .report import PrintReporter, Reporter
from .request import BuildRequest, caricatures_of, check_request, normalized, selection_of, settings_of


@dataclass
class BuildResult:
    model: Model
    settings: Settings
    plan: plans.Plan
    runtime: Runtime
    summary: Summary | None = None         # None for a dry run
    estimate_seconds: float | None = None  # dry runs only
    site: Path | None = None               # the written index.html


def run_build(request: BuildRequest, reporter: Reporter | None = None) -> BuildResult:
    """Select, plan, render, store, read the photos, write the site: `atlas build`."""
    reporter = reporter or PrintReporter()
    say = reporter.say
    request = normalized(request)
    check_request(request)
    k, n = request.shard_of
    runtime = resolve_runtime(request.device, request.precision, batch_size=request.batch_size,
                              workers=request.workers)
    rank, world = distributed.start()
    model = to_device(load_model(request.model, request.weights), runtime.device)
    settings = settings_of(request, runtime, model)
    selected = select_units(model, selection_of(request))
    context = DatasetContext(model, runtime, request.cache_dir, settings, rendered_layers(model, selected),
                             shard=(k + n * rank, n * world), lead=rank == 0, say=say, progress=reporter.progress)
    jobs = dataset_jobs(context, request)
    pictures_of_photos = caricatures_of(request)
    if pictures_of_photos is not None:
        caricatures.check(pictures_of_photos)
    units = plans.shard(plans.shard(selected, k, n), rank + 1, world)
    plan = plans.make_plan(model, units, settings, request.cache_dir)
    result = BuildResult(model, settings, plan, runtime)
    who = f"[rank {rank}/{world}] " if world > 1 else ""
    say(f"{who}{model.name} ({model.weights}) on {runtime.where}, {settings.precision}: {len(units)} units, "
        f"{len(plan.cached)} cached, {len(plan.todo)} to render "
        f"({settings.size} px, {steps_text(settings)}, recipe {settings.recipe})")
    if request.dry_run:
        if plan.todo:
            say("measuring a short warm-up to estimate the time...")
            result.estimate_seconds = estimate_seconds(model, plan.todo, settings, runtime)
            say(f"estimated time on {runtime.where}: {format_duration(result.estimate_seconds)}")
        return result

    cache.store_model_card(request.cache_dir, model.card())
    with reporter.progress(len(plan.todo), f"{who}rendering") as advance:
        summary = render_plan(model, plan, settings, runtime, root=request.cache_dir, on_batch=advance,
                              background=request.background_store)
    result.summary = summary
    say(f"{who}rendered {summary.rendered}, from cache {summary.cached}, failed {len(summary.failed)}"
        f" in {format_duration(summary.seconds)}")
    for label in summary.failed:
        say(f"  failed: {label}", err=True)

    distributed.wait_for_all()
    if rank == 0 and plan.cached:
        older = top_classes.missing(request.cache_dir, [plan.keys[u] for u in plan.cached])
        if older:
            top_classes.backfill(model, older, root=request.cache_dir, runtime=runtime)
            say(f"labels for {len(older)} cached units stored before labels were")
    if jobs:
        passes.run(jobs, model, runtime, say=say, progress=reporter.progress)
    if rank == 0 and request.connections:
        find_connections(model, selected, root=request.cache_dir, runtime=runtime, reporter=reporter)
    if rank == 0 and pictures_of_photos is not None:
        render_caricatures(model, selected, pictures_of_photos, settings=settings, runtime=runtime,
                           root=request.cache_dir, reporter=reporter)
    if rank == 0 and request.write_site and n == 1:
        result.site = publish(request.cache_dir, request.out, request.site_budget, reporter)
        say(f"site: {result.site}")
    elif rank == 0 and n > 1:
        say(f"shard {k}/{n} done; when every shard is, run: atlas render --cache-dir {request.cache_dir}")
    distributed.finish()
    return result


def steps_text(settings: Settings) -> str:
    """'512 steps', or '256 steps (classes 512)' where the kinds differ."""
    classes = settings.class_steps
    return f"{settings.steps} steps" + (f" (classes {classes})" if classes not in (None, settings.steps) else "")


def rendered_layers(model: Model, units: list[Unit]) -> tuple[str, ...]:
    """The layers a build renders units of, in forward order: the dataset side reads these."""
    return tuple(sorted({u.layer for u in units}, key=lambda name: model.layer(name).position))


def find_connections(model: Model, units: list[Unit], *, root: Path, runtime: Runtime, reporter: Reporter) -> None:
    """Expanded weights between consecutive rendered layers (and the deepest conv to the classes)."""
    pairs = rendered_pairs(model, units)
    if pairs:
        computed, seconds = connect(model, pairs, root=root, runtime=runtime, on_failure=lambda source, target, error:
                                    reporter.say(f"connections {source} -> {target}: skipped ({error})"))
        reporter.say(f"connections for {len(pairs)} layer pairs: "
                     + (f"{computed} computed in {format_duration(seconds)}" if computed else "from cache"))


def render_caricatures(model: Model, units: list[Unit], request: caricatures.CaricaturesRequest, *, settings: Settings,
                       runtime: Runtime, root: Path, reporter: Reporter) -> None:
    """Caricatures of a few photos at every rendered layer, one batch per photo."""
    layers = caricatures.caricature_layers(model, units)
    if not layers:
        return
    with reporter.progress(len(layers) * request.photos, "caricatures") as advance:
        summary = caricatures.render_caricatures(model, layers, request, settings=settings, runtime=runtime,
                                                 root=root, on_batch=advance)
    reporter.say(f"caricatures at {plural(len(layers), 'layer')}: rendered {summary.rendered}, "
                 f"from cache {summary.cached}, failed {len(summary.failed)} in {format_duration(summary.seconds)}")


def publish(cache_dir: Path, out: Path, budget: int | None = None, reporter: Reporter | None = None) -> Path:
    """Write the site from the cache alone and report what it weighs (`atlas.site.write.publish`)."""
    reporter = reporter or PrintReporter()
    return publish_site(cache_dir, out, budget, reporter.say)
