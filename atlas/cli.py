"""The `atlas` command: parses options and calls the library, nothing more."""

from __future__ import annotations

import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import click

from .errors import AtlasError
from .settings import RECIPE_HELP, RECIPES

DEFAULT_CACHE = Path(os.environ.get("ATLAS_CACHE") or
                     Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "atlas")


class AtlasGroup(click.Group):
    """Turns every user error into one line on stderr and a non-zero exit."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except AtlasError as err:
            raise click.ClickException(str(err)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted: finished units are cached; run the same command to resume", err=True)
            sys.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except Exception as err:
            if os.environ.get("ATLAS_DEBUG"):
                raise
            raise click.ClickException(f"unexpected {type(err).__name__}: {err} "
                                       "(set ATLAS_DEBUG=1 for the traceback)") from None


@click.group(cls=AtlasGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="atlas")
def main():
    """Render a browsable atlas of feature visualizations for an ImageNet classifier."""
    warnings.filterwarnings("ignore", category=UserWarning, module="torch")
    warnings.showwarning = lambda message, *args, **kwargs: click.echo(f"warning: {message}", err=True)


def _weights_option(f):
    return click.option("--weights", default="default", show_default=True,
                        help="'default' (ImageNet), 'random', or a local state-dict file.")(f)


@main.command()
@click.argument("model")
@_weights_option
def layers(model, weights):
    """Print the layer catalog of MODEL: name, type, layout, channels, and the default selection."""
    from .models import load_model

    loaded = load_model(model, weights)
    width = max([40] + [len(layer.name) + 1 for layer in loaded.layers])
    click.echo(f"{'layer':{width}} {'type':28} {'layout':9} {'channels':>8}")
    for layer in loaded.layers:
        mark = " *" if layer.default else " ◆" if layer.name == loaded.output_layer else ""
        click.echo(f"{layer.name:{width}} {layer.type:28} {str(layer.layout):9} {layer.channels:>8}{mark}")
    count = sum(layer.default for layer in loaded.layers)
    click.echo(f"* the default selection ({count} layers): {loaded.default_why}")
    click.echo("◆ the class-logit layer")
    click.echo("layouts: NCHW maps; NHWC channels-last maps; tokens+K: patch tokens after K prefix tokens "
               "(CLS), which channel objectives leave out; flat: one vector")
    click.echo(f"input: {loaded.spec.rule}; every view is resampled to that, whatever --size")


@main.command()
@click.argument("model")
@click.option("--preset", default="full", show_default=True, type=click.Choice(["full", "results", "quick"]),
              help="Starting point; every option below overrides it.")
@click.option("--layers", help="Layers to sweep: names, comma lists, globs (default: every conv layer).")
@click.option("--channels", type=click.IntRange(min=0), help="Only the first N channels of each layer (0: none).")
@click.option("--classes", help="Class indices/ranges like 1,3,10-20, or all, reference, none.")
@click.option("--units", "unit_specs", multiple=True, help="Single units LAYER:INDEX (repeatable, comma lists).")
@click.option("--objective", type=click.Choice(["channel", "neuron", "deepdream"]), help="Objective of conv units.")
@click.option("--class-objective", type=click.Choice(["logit", "prob"]), help="Objective of class units.")
@click.option("--negative/--no-negative", default=None, help="Also render each unit's negative image.")
@click.option("--diversity", type=click.IntRange(min=0, max=64), help="Also render N diverse images per unit.")
@click.option("--size", type=int, help="Image side in pixels.")
@click.option("--steps", type=int, help="Optimization steps per image.")
@click.option("--lr", type=float, help="Adam learning rate.")
@click.option("--param", type=click.Choice(["fourier", "pixel"]), help="Image parameterization.")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)),
              help="What the model sees each step: " + "; ".join(f"{k}: {v}" for k, v in RECIPE_HELP.items()) + ".")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), help="Numerics; auto: bf16 where native.")
@click.option("--seed", type=int, help="Random seed (same seed, same image on the same device).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Units per batch (default: from free memory).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@_weights_option
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("site"), show_default=True,
              help="Where the website is written.")
@click.option("--shard", help="Render only shard K of N (1-based) of the plan, e.g. 2/8.")
@click.option("--dry-run", is_flag=True, help="Print the plan and a measured time estimate; render nothing.")
@click.option("--site/--no-site", "write_site", default=True, help="Write the website at the end.")
@click.option("--examples", "examples_dir", type=click.Path(path_type=Path),
              help="A folder of natural images: show each unit's top examples beside its visualization.")
@click.option("--examples-k", type=click.IntRange(min=1, max=100), default=9, show_default=True,
              help="Top examples kept per unit.")
def build(model, preset, layers, channels, classes, unit_specs, objective, class_objective, negative, diversity,
          size, steps, lr, param, recipe, precision, seed, batch_size, device, weights, cache_dir, out, shard,
          dry_run, write_site, examples_dir, examples_k):
    """Render every unit of MODEL's chosen layers and classes, cache them, write the site."""
    from . import build as builds, cache, distributed
    from . import device as devices
    from . import plan as plans
    from .models import load_model, to_device
    from .presets import preset as preset_named
    from .settings import Settings

    chosen = preset_named(preset)

    def pick(value, key, default=None):
        return value if value is not None else chosen.get(key, default)

    k, n = plans.parse_shard(shard)
    if diversity == 1:
        raise AtlasError("--diversity must be 0 (off) or at least 2")
    unit_list = tuple(s.strip() for spec in unit_specs for s in spec.replace(" ", ",").split(",") if s.strip())
    if "units" in chosen and not unit_specs:
        unit_list = (chosen["units"],)
    selection = builds.Selection(
        layers=pick(layers, "layers"), channels=pick(channels, "channels"), classes=pick(classes, "classes", "all"),
        units=unit_list, objective=objective or "channel", class_objective=class_objective or "logit",
        negative=bool(negative), diversity=diversity or 1)

    target = devices.resolve_device(device)
    _check_writable(cache_dir, "cache dir")
    if write_site and not dry_run:
        _check_writable(out, "output dir")
    if examples_dir is not None:
        from .examples import list_images
        list_images(examples_dir)  # a bad folder fails now, not after the render
    rank, world = distributed.start()
    loaded = to_device(load_model(model, weights), target)
    given = {"size": pick(size, "size"), "steps": pick(steps, "steps"), "lr": lr, "param": param, "seed": seed,
             "recipe": recipe}
    settings = Settings(**{key: value for key, value in given.items() if value is not None},
                        precision=devices.resolve_precision(precision or "auto", target))
    selected = builds.select_units(loaded, selection)
    units = plans.shard(plans.shard(selected, k, n), rank + 1, world)
    plan = plans.make_plan(loaded, units, settings, cache_dir)
    who = f"[rank {rank}/{world}] " if world > 1 else ""
    click.echo(f"{who}{loaded.name} ({loaded.weights}) on {devices.describe(target)}, {settings.precision}: "
               f"{len(units)} units, {len(plan.cached)} cached, {len(plan.todo)} to render "
               f"({settings.size} px, {settings.steps} steps, recipe {settings.recipe})")
    if dry_run:
        if plan.todo:
            click.echo("measuring a short warm-up to estimate the time...")
            seconds = builds.estimate_seconds(loaded, plan.todo, settings, target, batch_size)
            click.echo(f"estimated time on {devices.describe(target)}: {_duration(seconds)}")
        return

    cache.store_model_card(cache_dir, loaded.card())
    with click.progressbar(length=len(plan.todo), label=f"{who}rendering", show_eta=True, show_pos=True,
                           item_show_func=lambda rate: rate, file=sys.stderr) as bar:
        started = time.perf_counter()
        done = [0]

        def advance(count: int):
            done[0] += count
            bar.update(count, f"{done[0] / (time.perf_counter() - started):.2f} units/s")

        summary = builds.render_plan(loaded, plan, settings, cache_dir, target, batch_size, advance)
    click.echo(f"{who}rendered {summary.rendered}, from cache {summary.cached}, failed {len(summary.failed)}"
               f" in {_duration(summary.seconds)}")
    for label in summary.failed:
        click.echo(f"  failed: {label}", err=True)

    distributed.wait_for_all()
    if rank == 0 and examples_dir is not None:
        _find_examples(loaded, sorted({u.layer for u in selected}), examples_dir, cache_dir, target,
                       examples_k, batch_size)
    if rank == 0 and write_site and n == 1:
        click.echo(f"site: {_write_site(cache_dir, out)}")
    elif rank == 0 and n > 1:
        click.echo(f"shard {k}/{n} done; when every shard is, run: atlas render --cache-dir {cache_dir}")
    distributed.finish()


@main.command("render")
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=Path("site"), show_default=True)
@click.option("--site-budget", default="1GB", show_default=True, callback=lambda ctx, param, value: _budget(value),
              help="Warn when the written site is larger (GitHub Pages allows 1 GB).")
def render_site(cache_dir, out, site_budget):
    """Rebuild the website from the cache alone (no model needed)."""
    if not (cache_dir / "models").is_dir():
        raise AtlasError(f"no atlas cache at {cache_dir}: run `atlas build MODEL` first")
    _check_writable(out, "output dir")
    click.echo(f"site: {_write_site(cache_dir, out, site_budget)}")


@main.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("site"), show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def serve(out, port):
    """Preview the website on http://127.0.0.1:PORT."""
    from .site import serve as serve_site

    serve_site(out, port=port)


def _find_examples(model, layers, folder, cache_dir, device, k, batch_size):
    from .examples import find_examples, list_images

    with click.progressbar(length=len(list_images(folder)), label="dataset examples", show_eta=True,
                           file=sys.stderr) as bar:
        _, rate = find_examples(model, layers, folder, cache_dir, device, k, batch_size or 32, bar.update)
    click.echo(f"dataset examples for {len(layers)} layers: "
               + (f"{rate:.1f} images/s" if rate else "from cache"))


def _write_site(cache_dir: Path, out: Path, budget: int | None = None) -> Path:
    """Write the site, then print what it weighs by kind of file and warn, with the
    fix, when it is over `budget` bytes (default: GitHub Pages' 1 GB)."""
    from .site import DEFAULT_BUDGET, measure, write_site

    try:
        index = write_site(cache_dir, out)
        size = measure(out)
    except OSError as err:
        raise AtlasError(f"cannot write the site to {out}: {err.strerror or err}") from None
    click.echo(f"site size: {size.summary()}")
    problem = size.over(budget or DEFAULT_BUDGET)
    if problem:
        click.echo(f"warning: {problem}", err=True)
    return index


def _budget(value: str) -> int:
    """--site-budget: a size like 1GB or 500MB, in bytes."""
    from .site.size import parse_budget

    try:
        return parse_budget(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


def _check_writable(path: Path, what: str) -> None:
    """Fail before any rendering, not after hours of it."""
    if path.exists() and not path.is_dir():
        raise AtlasError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise AtlasError(f"{what} {path} is not writable: {err.strerror or err}") from None


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@main.command()
@click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE, show_default=True)
@click.option("--min-age", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Minutes: younger files may belong to a build still running and are kept.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def gc(cache_dir, min_age, dry_run):
    """Remove cache files no entry references: orphan images, stale temp files, unused crops."""
    from .gc import collect
    from .text import format_bytes

    if not (cache_dir / "entries").is_dir() and not (cache_dir / "examples").is_dir():
        raise AtlasError(f"no atlas cache at {cache_dir}")
    report = collect(cache_dir, min_age * 60, dry_run)
    verb = "would free" if dry_run else "freed"
    for kind, found in report.removed.items():
        if found:
            click.echo(f"  {kind}: {len(found)} files, {format_bytes(sum(size for _, size in found))}")
            if dry_run:
                for path, _ in found:
                    click.echo(f"    {path}")
    click.echo(f"gc: {verb} {format_bytes(report.freed)} in {report.files} files"
               + (f"; kept {report.kept_young} unreferenced files younger than {min_age:g} min"
                  if report.kept_young else "")
               + (f"; kept {report.kept_unreadable} images of unreadable entries" if report.kept_unreadable else ""))
