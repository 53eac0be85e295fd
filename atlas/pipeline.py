"""One build as one call: a request record in, a rendered cache and a site out.

    model name ──► load, move to the device
    request    ──► selection + settings (a preset filled in under the user's options)
               ──► plan (minus cached units) ──► render + store ──► examples ──► site

`run_build(BuildRequest("vgg16"))` is what `atlas build vgg16` does; the CLI
only parses options into the request and shows what the `Reporter` is told.
The GPU check, the benchmarks and a notebook make the same call.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Protocol

from .pictures import render as builds
from .store import cache
from .model import distributed
from .model import device as devices
from .plan import work as plans
from .activation_atlas.job import AtlasRequest, build_atlas
from .dissection.job import DEFAULT_QUANTILE
from .core.errors import AtlasError
from .model.classifier import Model, to_device
from .model.loading import load_model
from .data.photos import list_images
from .plan.presets import preset as preset_named
from .plan.selection import Selection, select_units
from .core.settings import Settings
from .site.write import publish as publish_site
from .store.files import check_writable
from .core.text import format_duration, plural

Advance = Callable[[int], None]


class Reporter(Protocol):
    """Where a build's messages and progress go (the CLI prints them; a notebook may not)."""

    def say(self, text: str, err: bool = False) -> None: ...

    def progress(self, total: int, label: str) -> ContextManager[Advance]: ...


class PrintReporter:
    """Plain lines on stdout/stderr, progress counted silently: for notebooks and scripts."""

    def say(self, text: str, err: bool = False) -> None:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)

    @contextlib.contextmanager
    def progress(self, total: int, label: str) -> Iterator[Advance]:
        yield lambda n: None


@dataclass(frozen=True)
class BuildRequest:
    """Everything `atlas build` is asked; None means "from the preset" (or the default)."""

    model: str
    weights: str = "default"
    preset: str = "full"
    # what to render (see Selection)
    layers: str | None = None
    channels: int | None = None
    classes: str | None = None
    units: tuple[str, ...] = ()
    objective: str = "channel"
    class_objective: str = "logit"
    negative: bool = False
    diversity: int = 1
    directions: int = 0  # random directions per selected layer (seeded by `seed`)
    # how to render it (see Settings); precision "auto" is resolved on the device
    size: int | None = None
    steps: int | None = None
    lr: float | None = None
    param: str | None = None
    recipe: str | None = None
    precision: str = "auto"
    seed: int | None = None
    # where and how fast: none of these changes an image
    device: str = "auto"
    batch_size: int | None = None
    background_store: bool = True
    cache_dir: Path = Path("cache")
    out: Path = Path("site")
    shard: str | None = None
    dry_run: bool = False
    write_site: bool = True
    site_budget: int | None = None  # bytes; warn when the site is larger (default 1 GB)
    examples_dir: Path | None = None
    examples_k: int = 9
    # network dissection of the rendered layers against a concept dataset (Broden, a labelled
    # folder, or any photos: their colours)
    dissect_dir: Path | None = None
    dissect_quantile: float = DEFAULT_QUANTILE
    dissect_mask_size: int | None = None
    workers: int | None = None  # image-decoding processes of the dataset passes
    # activation atlas of a few layers from a folder of photos (see atlas.activation_atlas)
    atlas_dir: Path | None = None
    atlas_layers: str | None = None         # None: three of the rendered layers, spread over the depth
    atlas_positions: int = 4                # samples per photo
    atlas_samples: int | None = None        # most samples per layer (None: as the device suits, device.py)
    atlas_class: int | None = None          # also a class atlas of the deepest atlas layer
    atlas_layout: str = "umap"
    atlas_icon_steps: int = 256
    # circuits: expanded weights between rendered layers (cached per layer pair)
    connections: bool = True
    # caricatures of the first N photos of this folder (default: the examples folder) at every rendered layer
    caricatures_dir: Path | None = None
    caricature_photos: int = 3
    caricature_steps: int | None = None  # None: the build's steps


@dataclass
class BuildResult:
    model: Model
    settings: Settings
    plan: plans.Plan
    summary: builds.Summary | None = None  # None for a dry run
    estimate_seconds: float | None = None  # dry runs only
    site: Path | None = None  # the written index.html


def selection_of(request: BuildRequest) -> Selection:
    """The request's selection, with the preset filling what the user left out."""
    chosen = preset_named(request.preset)
    units = request.units or ((chosen["units"],) if "units" in chosen else ())
    return Selection(
        layers=_pick(request.layers, chosen, "layers"), channels=_pick(request.channels, chosen, "channels"),
        classes=_pick(request.classes, chosen, "classes", "all"), units=tuple(units),
        objective=request.objective, class_objective=request.class_objective,
        negative=request.negative, diversity=request.diversity,
        directions=request.directions, directions_seed=request.seed or 0)


def settings_of(request: BuildRequest, device, model: Model | None = None) -> Settings:
    """The request's render settings; precision 'auto' becomes what `device` computes
    natively. With `model`, a picture side it can never take is an error naming its input rule."""
    chosen = preset_named(request.preset)
    size = _pick(request.size, chosen, "size")
    if model is not None and size is not None and not model.spec.rule.free:
        model.spec.check_picture(size, model.name)  # else Settings' own range check speaks
    given = {"size": size, "steps": _pick(request.steps, chosen, "steps"),
             "lr": request.lr, "param": request.param, "seed": request.seed,
             "recipe": _pick(request.recipe, chosen, "recipe")}
    return Settings(**{key: value for key, value in given.items() if value is not None},
                    precision=devices.resolve_precision(request.precision, device))


def _pick(value, chosen: dict, key: str, default=None):
    return value if value is not None else chosen.get(key, default)


def check_request(request: BuildRequest) -> None:
    """Everything that can be checked before loading a model: bad input fails in a second."""
    plans.parse_shard(request.shard)
    preset_named(request.preset)
    check_writable(request.cache_dir, "cache dir")
    if request.write_site and not request.dry_run:
        check_writable(request.out, "output dir")
    if request.examples_dir is not None:
        list_images(request.examples_dir, "--examples")  # a bad folder fails now, not after the render
    if request.atlas_dir is not None:
        list_images(request.atlas_dir, "--activation-atlas")
    if request.dissect_dir is not None and not Path(request.dissect_dir).is_dir():
        raise AtlasError(f"--dissect {request.dissect_dir} is not a folder")
    if not 0 < request.dissect_quantile < 0.5:
        raise AtlasError(f"--dissect-quantile must be between 0 and 0.5, got {request.dissect_quantile}")
    if request.caricatures_dir is not None:
        list_images(request.caricatures_dir, "--caricatures")


def run_build(request: BuildRequest, reporter: Reporter | None = None) -> BuildResult:
    """Select, plan, render, store, find examples, write the site: `atlas build`."""
    reporter = reporter or PrintReporter()
    say = reporter.say
    request = _normalized(request)
    check_request(request)
    k, n = plans.parse_shard(request.shard)
    target = devices.resolve_device(request.device)
    rank, world = distributed.start()
    model = to_device(load_model(request.model, request.weights), target)
    settings = settings_of(request, target, model)
    selected = select_units(model, selection_of(request))
    units = plans.shard(plans.shard(selected, k, n), rank + 1, world)
    plan = plans.make_plan(model, units, settings, request.cache_dir)
    result = BuildResult(model, settings, plan)
    who = f"[rank {rank}/{world}] " if world > 1 else ""
    where = devices.describe(target)
    say(f"{who}{model.name} ({model.weights}) on {where}, {settings.precision}: {len(units)} units, "
        f"{len(plan.cached)} cached, {len(plan.todo)} to render "
        f"({settings.size} px, {settings.steps} steps, recipe {settings.recipe})")
    if request.dry_run:
        if plan.todo:
            say("measuring a short warm-up to estimate the time...")
            result.estimate_seconds = builds.estimate_seconds(model, plan.todo, settings, target, request.batch_size)
            say(f"estimated time on {where}: {format_duration(result.estimate_seconds)}")
        return result

    cache.store_model_card(request.cache_dir, model.card())
    with reporter.progress(len(plan.todo), f"{who}rendering") as advance:
        summary = builds.render_plan(model, plan, settings, request.cache_dir, target, request.batch_size,
                                     advance, background=request.background_store)
    result.summary = summary
    say(f"{who}rendered {summary.rendered}, from cache {summary.cached}, failed {len(summary.failed)}"
        f" in {format_duration(summary.seconds)}")
    for label in summary.failed:
        say(f"  failed: {label}", err=True)

    distributed.wait_for_all()
    if rank == 0 and plan.cached:
        from .pictures import top_classes as labels
        older = labels.missing(request.cache_dir, [plan.keys[u] for u in plan.cached])
        if older:
            labels.backfill(model, older, request.cache_dir, target, settings.precision)
            say(f"labels for {len(older)} cached units stored before labels were")
    if request.dissect_dir is not None or (rank == 0 and (request.examples_dir or request.atlas_dir) is not None):
        outcome = dataset_side(model, selected, request, settings, target, (k, n), (rank, world), reporter)
        if rank == 0 and outcome.atlas is not None:
            render_atlases(model, outcome.atlas, settings, target, reporter)
    if rank == 0 and request.connections:
        find_connections(model, selected, request, target, reporter)
    if rank == 0 and (request.caricatures_dir or request.examples_dir) is not None:
        render_caricatures(model, selected, request, settings, target, reporter)
    if rank == 0 and request.write_site and n == 1:
        result.site = publish(request.cache_dir, request.out, request.site_budget, reporter)
        say(f"site: {result.site}")
    elif rank == 0 and n > 1:
        say(f"shard {k}/{n} done; when every shard is, run: atlas render --cache-dir {request.cache_dir}")
    distributed.finish()
    return result


def _normalized(request: BuildRequest) -> BuildRequest:
    """Paths as Paths and unit lists split, whatever the caller passed."""
    changes = {}
    for f in fields(request):
        value = getattr(request, f.name)
        if f.name in ("cache_dir", "out", "examples_dir", "caricatures_dir", "dissect_dir", "atlas_dir") and value is not None \
                and not isinstance(value, Path):
            changes[f.name] = Path(value)
    units = tuple(s.strip() for spec in request.units for s in str(spec).replace(" ", ",").split(",") if s.strip())
    if units != request.units:
        changes["units"] = units
    return replace(request, **changes) if changes else request


def dataset_side(model: Model, units: list, request: BuildRequest, settings: Settings, device,
                 shard: tuple[int, int], rank: tuple[int, int], reporter: Reporter):
    """Dataset examples and dissection of the rendered layers (`atlas.passes`). Examples come
    from rank 0 alone; the dissection splits its images over shards and ranks alike."""
    from .data import passes

    (k, n), (r, world) = shard, rank
    layers = sorted({u.layer for u in units}, key=lambda name: model.layer(name).position)
    atlas = None
    if request.atlas_dir is not None and r == 0:
        atlas = AtlasRequest(Path(request.atlas_dir), atlas_layers(model, units, request.atlas_layers),
                             request.atlas_positions, request.atlas_samples or devices.default_atlas_samples(device),
                             request.seed or 0, request.atlas_layout,
                             class_index=request.atlas_class, icon_steps=request.atlas_icon_steps)
    dataset_request = passes.DatasetRequest(
        examples_dir=request.examples_dir if r == 0 else None, examples_k=request.examples_k,
        dissect_dir=request.dissect_dir, quantile=request.dissect_quantile, mask_size=request.dissect_mask_size,
        batch_size=request.batch_size or 32, workers=request.workers, shard=(k + n * r, n * world), atlas=atlas)
    return passes.run(model, layers, dataset_request, request.cache_dir, device, settings.precision,
                      reporter.say, reporter.progress)


def atlas_layers(model: Model, units: list, names: str | None) -> tuple[str, ...]:
    """The layers an activation atlas covers: those named, else three of the rendered layers
    with a map (first third, second third, deepest), else of the model's default layers."""
    if names:
        return tuple(layer.name for layer in model.select_layers(names))
    rendered = sorted({u.layer for u in units if not u.kind.is_class}, key=lambda name: model.layer(name).position)
    spatial = [n for n in rendered if model.layer(n).layout.spatial] or \
        [l.name for l in model.layers if l.default and l.layout.spatial]
    if not spatial:
        raise AtlasError(f"{model.name} has no layer with a map for an activation atlas: name one with --atlas-layers")
    picks = {spatial[len(spatial) // 3], spatial[2 * len(spatial) // 3], spatial[-1]}
    return tuple(n for n in spatial if n in picks)


def render_atlases(model: Model, job, settings: Settings, device, reporter: Reporter) -> None:
    """Lay out, bin and render the icons of every atlas layer (and the class atlas)."""
    wanted = [(layer, None) for layer in job.request.layers]
    if job.request.class_index is not None:
        wanted.append((job.request.layers[-1], job.request.class_index))
    for layer, class_index in wanted:
        record, summary = build_atlas(job, layer, settings, device, class_index)
        icons = sum(len(level["cells"]) for level in record["levels"])
        what = f"class {class_index} atlas" if class_index is not None else "activation atlas"
        reporter.say(f"{what} of {layer}: {record['samples']} samples of {record['images']} photos, "
                     f"layout {record['layout']}, grids {'/'.join(str(l['size']) for l in record['levels'])}, "
                     f"{icons} icons (rendered {summary.rendered}, from cache {summary.cached}"
                     f"{', failed ' + str(len(summary.failed)) if summary.failed else ''})")


def find_connections(model: Model, units: list, request: BuildRequest, device, reporter: Reporter) -> None:
    """Expanded weights between consecutive rendered layers (and the deepest conv to the classes)."""
    from .circuits.connections import connect, rendered_pairs

    pairs = rendered_pairs(model, units)
    if pairs:
        computed, seconds = connect(model, pairs, request.cache_dir, device)
        reporter.say(f"connections for {len(pairs)} layer pairs: "
                     + (f"{computed} computed in {format_duration(seconds)}" if computed else "from cache"))


def render_caricatures(model: Model, units: list, request: BuildRequest, settings: Settings, device,
                       reporter: Reporter) -> None:
    """Caricatures of a few photos at every rendered layer, one batch per photo."""
    from .caricatures.job import caricature_layers, render_caricatures as render_all

    layers = caricature_layers(model, units)
    if not layers:
        return
    folder, option = ((request.caricatures_dir, "--caricatures") if request.caricatures_dir is not None
                      else (request.examples_dir, "--examples"))
    if request.caricature_steps:
        settings = settings.replace(steps=request.caricature_steps)
    with reporter.progress(len(layers) * request.caricature_photos, "caricatures") as advance:
        summary = render_all(model, layers, folder, request.caricature_photos, settings, request.cache_dir, device,
                             on_batch=advance, option=option)
    reporter.say(f"caricatures at {plural(len(layers), 'layer')}: rendered {summary.rendered}, from cache {summary.cached}"
                 f", failed {len(summary.failed)} in {format_duration(summary.seconds)}")


def publish(cache_dir: Path, out: Path, budget: int | None = None, reporter: Reporter | None = None) -> Path:
    """Write the site from the cache alone and report what it weighs (`atlas.site.write.publish`)."""
    reporter = reporter or PrintReporter()
    return publish_site(cache_dir, out, budget, reporter.say)
