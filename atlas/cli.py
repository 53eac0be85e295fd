"""The `atlas` command: parses options and calls the library, nothing more."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

import click

from .core import kinds
from .core.errors import AtlasError
from .core.settings import PARAMS, PRECISIONS, RECIPE_HELP, RECIPES

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
    warnings.filterwarnings("ignore", category=FutureWarning, module="torch")   # torch's own deprecations, not ours
    warnings.showwarning = lambda message, *args, **kwargs: click.echo(f"warning: {message}", err=True)


def _cache_dir_option(f):
    return click.option("--cache-dir", type=click.Path(path_type=Path), default=DEFAULT_CACHE, show_default=True,
                        help="Where rendered units and dataset results are kept.")(f)


def _out_option(f):
    return click.option("--out", type=click.Path(path_type=Path), default=Path("site"), show_default=True,
                        help="Where the website is written.")(f)


def _site_budget_option(f):
    return click.option("--site-budget", default="1GB", show_default=True,
                        callback=lambda ctx, param, value: _budget(value),
                        help="Warn when the written site is larger (GitHub Pages allows 1 GB).")(f)


def _weights_option(f):
    return click.option("--weights", default="default", show_default=True,
                        help="'default' (ImageNet), 'random', or a local state-dict file.")(f)


@main.command()
@click.argument("model")
@_weights_option
def layers(model, weights):
    """Print the layer catalog of MODEL: name, type, layout, channels, and the default selection."""
    from .model.loading import load_model

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
@click.option("--layers", help="Layers to sweep: names, comma lists, globs, none "
              "(default: the model's default layers, marked by `atlas layers MODEL`).")
@click.option("--channels", type=click.IntRange(min=0), help="Only the first N channels of each layer (0: none).")
@click.option("--classes", help="Class indices/ranges like 1,3,10-20, or all, reference, none.")
@click.option("--units", "unit_specs", multiple=True, help="Single units LAYER:INDEX (repeatable, comma lists).")
@click.option("--objective", type=click.Choice(list(kinds.UNIT_KINDS)), help="Objective of conv units.")
@click.option("--class-objective", type=click.Choice(list(kinds.CLASS_KINDS)), help="Objective of class units.")
@click.option("--negative/--no-negative", default=None, help="Also render each unit's negative image.")
@click.option("--diversity", type=click.IntRange(min=0, max=64), help="Also render N diverse images per unit.")
@click.option("--directions", type=click.IntRange(min=0, max=1000), default=0,
              help="Also render N random directions (seeded mixes of channels) of each selected layer.")
@click.option("--size", type=int, help="Image side in pixels.")
@click.option("--steps", type=int, help="Optimization steps per image, of every unit (the preset's: 256 for "
              "channels and 512 for classes in full and results, 128 in quick).")
@click.option("--channel-steps", type=click.IntRange(min=1), help="Steps of every unit but class units.")
@click.option("--class-steps", type=click.IntRange(min=1), help="Steps of class units.")
@click.option("--pictures", type=click.IntRange(min=1, max=16), default=1, show_default=True,
              help="Pictures of each unit, from as many seeds, shown as a set on its page.")
@click.option("--lr", type=float, help="Step size (default: the recipe's; class units keep the recipe's ratio to it).")
@click.option("--param", type=click.Choice(list(PARAMS)), help="Image parameterization.")
@click.option("--recipe", type=click.Choice(sorted(RECIPES)),
              help="What the model sees each step, and how far a step goes: "
              + "; ".join(f"{k}: {v}" for k, v in RECIPE_HELP.items()) + ".")
@click.option("--precision", type=click.Choice(["auto", *PRECISIONS]), help="Numerics; auto: bf16 where native.")
@click.option("--seed", type=int, help="Random seed (same seed, same image on the same device).")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Images per render batch (a unit with --diversity N takes N; default: from free memory on a GPU, "
                   "16 views on a CPU).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@_weights_option
@_cache_dir_option
@_out_option
@click.option("--shard", help="Render only shard K of N (1-based) of the plan, e.g. 2/8.")
@click.option("--dry-run", is_flag=True, help="Print the plan and a measured time estimate; render nothing.")
@click.option("--site/--no-site", "write_site", default=True, help="Write the website at the end.")
@click.option("--examples", "examples_dir", type=click.Path(path_type=Path),
              help="A folder of natural images: show each unit's top examples beside its visualization.")
@click.option("--examples-k", type=click.IntRange(min=1, max=100), default=9, show_default=True,
              help="Top examples kept per unit.")
@click.option("--dissect", "dissect_dir", type=click.Path(path_type=Path),
              help="Network dissection of the rendered layers: a Broden folder (index.csv), a labelled folder "
                   "(labels.json, images/, masks/), or any folder of photos, dissected by their colours.")
@click.option("--dissect-quantile", type=click.FloatRange(min=0, max=0.5, min_open=True, max_open=True),
              default=0.005, show_default=True, help="A unit's region: where it is in this top share of its activations.")
@click.option("--dissect-mask-size", type=click.IntRange(min=1, max=1024),
              help="Side the activation maps are compared with the masks at (default: half the model's input).")
@click.option("--activation-atlas", "atlas_dir", type=click.Path(path_type=Path),
              help="A folder of photos: an activation atlas (a map of everything a layer sees) of a few layers.")
@click.option("--atlas-layers", help="Layers of the activation atlas (default: three of the rendered layers).")
@click.option("--atlas-positions", type=click.IntRange(min=1, max=1000), default=4, show_default=True,
              help="Activation vectors sampled per photo.")
@click.option("--atlas-samples", type=click.IntRange(min=16),
              help="Most samples per layer (default: 100,000 on a GPU, 20,000 on a CPU).")
@click.option("--atlas-class", type=click.IntRange(min=0), help="Also a class atlas of this class on the deepest atlas layer.")
@click.option("--atlas-layout", type=click.Choice(["umap", "pca"]), default="umap", show_default=True,
              help="How samples are laid out in 2-D.")
@click.option("--atlas-icon-steps", type=click.IntRange(min=1), default=256, show_default=True,
              help="Optimization steps of each atlas icon (80 px).")
@click.option("--features", "features_dir", type=click.Path(path_type=Path),
              help="A folder of photos: learn a sparse dictionary of a few layers and show its features as units.")
@click.option("--feature-layers", help="Layers of the dictionaries (default: the activation atlas's).")
@click.option("--dictionary-size", help="Features per layer: a number, or a multiple of its channels such as 4x "
              "(default: 8x).")
@click.option("--dictionary-k", type=click.IntRange(min=1), default=32, show_default=True, help="Codes per position.")
@click.option("--dictionary-kind", type=click.Choice(["topk", "batchtopk", "archetypal"]), default="topk",
              show_default=True, help="How codes are made sparse; archetypal keeps atoms near the data.")
@click.option("--feature-pictures", type=click.IntRange(min=0), help="Features pictured per layer, most frequent "
              "first (default: every live one).")
@click.option("--workers", type=click.IntRange(min=0, max=64),
              help="Image-decoding processes of the dataset passes (default: every core but one).")
@click.option("--connections/--no-connections", default=True, show_default=True,
              help="Compute each unit's strongest inputs and outputs among the rendered layers (expanded weights).")
@click.option("--caricatures", "caricatures_dir", type=click.Path(path_type=Path),
              help="A folder of photos: render what every rendered layer makes of the first few "
                   "(default: the --examples folder).")
@click.option("--caricature-photos", type=click.IntRange(min=1, max=100), default=3, show_default=True,
              help="How many photos of that folder get caricatures.")
@click.option("--caricature-steps", type=click.IntRange(min=1), help="Optimization steps of a caricature "
              "(default: --steps).")
@_site_budget_option
@click.option("--background-store/--inline-store", default=True, hidden=True,
              help="Store results on a background thread (the default) or between batches.")
def build(model, unit_specs, negative, diversity, objective, class_objective, precision, examples_dir, examples_k,
          dissect_dir, dissect_quantile, dissect_mask_size, atlas_dir, atlas_layers, atlas_positions, atlas_samples,
          atlas_class, atlas_layout, atlas_icon_steps, caricatures_dir, caricature_photos, caricature_steps,
          features_dir, feature_layers, dictionary_size, dictionary_k, dictionary_kind, feature_pictures, **options):
    """Render every unit of MODEL's chosen layers and classes, cache them, write the site."""
    from .activation_atlas.job import ActivationAtlasRequest
    from .caricatures.job import CaricaturesRequest
    from .dictionary.job import DictionaryRequest, parse_size
    from .dissection.job import DissectionRequest
    from .examples.job import ExamplesRequest
    from .pipeline import BuildRequest, run_build

    if diversity == 1:
        raise AtlasError("--diversity must be 0 (off) or at least 2")
    examples = ExamplesRequest(examples_dir, examples_k) if examples_dir is not None else None
    dissection = (DissectionRequest(dissect_dir, dissect_quantile, dissect_mask_size)
                  if dissect_dir is not None else None)
    atlas = (ActivationAtlasRequest(atlas_dir, atlas_layers, atlas_positions, atlas_samples, atlas_layout,
                                    class_index=atlas_class, icon_steps=atlas_icon_steps)
             if atlas_dir is not None else None)
    dictionary = (DictionaryRequest(features_dir, feature_layers, *parse_size(dictionary_size), dictionary_k,
                                    dictionary_kind, pictures=feature_pictures) if features_dir is not None else None)
    caricatures = (CaricaturesRequest(caricatures_dir, caricature_photos, caricature_steps)
                   if caricatures_dir is not None else None)
    if caricatures is None and examples is not None:   # the examples folder's photos, with these options
        caricatures = CaricaturesRequest(examples_dir, caricature_photos, caricature_steps, option="--examples")
    request = BuildRequest(model=model, units=unit_specs, negative=bool(negative), diversity=diversity or 1,
                           objective=objective or "channel", class_objective=class_objective or "logit",
                           precision=precision or "auto", examples=examples, dissection=dissection,
                           activation_atlas=atlas, dictionary=dictionary, caricatures=caricatures, **options)
    run_build(request, ClickReporter())


class ClickReporter:
    """Messages as click lines; progress as a bar with units/s and an ETA on stderr."""

    def say(self, text: str, err: bool = False) -> None:
        click.echo(text, err=err)

    @contextlib.contextmanager
    def progress(self, total: int, label: str):
        with click.progressbar(length=total, label=label, show_eta=True, show_pos=True,
                               item_show_func=lambda rate: rate, file=sys.stderr) as bar:
            started, done = time.perf_counter(), [0]

            def advance(count: int):
                done[0] += count
                bar.update(count, f"{done[0] / max(time.perf_counter() - started, 1e-9):.2f} units/s")

            yield advance


@main.command("render")
@_cache_dir_option
@_out_option
@_site_budget_option
def render_site(cache_dir, out, site_budget):
    """Rebuild the website from the cache alone (no model needed)."""
    from .site.write import publish
    from .store.files import check_writable

    if not (cache_dir / "models").is_dir():
        raise AtlasError(f"no atlas cache at {cache_dir}: run `atlas build MODEL` first")
    check_writable(out, "output dir")
    click.echo(f"site: {publish(cache_dir, out, site_budget, ClickReporter().say)}")


@main.command()
@_out_option
@click.option("--port", type=int, default=8000, show_default=True)
def serve(out, port):
    """Preview the website on http://127.0.0.1:PORT."""
    from .site import serve as serve_site

    serve_site(out, port=port)


def _budget(value: str) -> int:
    """--site-budget: a size like 1GB or 500MB, in bytes."""
    from .site.size import parse_budget

    try:
        return parse_budget(value)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@main.command()
@_cache_dir_option
@click.option("--min-age", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Minutes: younger files may belong to a build still running and are kept.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
def gc(cache_dir, min_age, dry_run):
    """Remove cache files no entry references: orphan images, stale temp files, unused crops."""
    from .store.gc import collect
    from .core.text import format_bytes

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
