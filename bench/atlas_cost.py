"""Activation atlas: what each stage costs, and a real atlas to look at.

    python bench/atlas_cost.py --photos /work/data/imagenet-sample --positions 4            # Lite0, three layers
    python bench/atlas_cost.py --umap 10000 --umap 100000                                   # UMAP alone, synthetic
    python bench/atlas_cost.py --model vgg16 --weights random --layers features.28 \\
        --photos DIR --positions 100 --layout umap                                     # on a GPU: 100k samples

Prints, on one device:

  sampling     images/s of the sampling pass (decode, forward, attribution to every
               class at every position) against its floor: the forward pass and the
               attributions alone, on images decoded beforehand
  layout       seconds and peak memory (RSS) of the layout
  icons        seconds per icon (80 px, the atlas's steps) against a channel unit's
               (the build's size and steps), both rendered in this run
  site         bytes of the atlas page, its icons and photo patches

The atlas is the build's own job (`atlas.activation_atlas.job`): its sampling ride
read alone here, so it is timed, then `assemble.build_atlas` per layer; `--batch-size`
photos per batch of the pass, `--workers` decoding processes (the runtime's,
`atlas.model.runtime`).

`--umap N` lays out N synthetic vectors (512-d, clustered) and reports time and
peak memory: run each N in its own process for a clean peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.activation_atlas import grid
from atlas.activation_atlas.assemble import build_atlas
from atlas.activation_atlas.job import ActivationAtlasRequest, atlas_job
from atlas.activation_atlas.sampling import attributions, grid_cells, positions
from atlas.core.settings import DEFAULT_RECIPE, Settings
from atlas.core.units import Unit
from atlas.data import sources
from atlas.data.stream import stream
from atlas.engine.render import render_batch
from atlas.model.classifier import normalize, to_device
from atlas.model.forward import activations
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime
from atlas.store import cache as entries

LITE_LAYERS = "_blocks.4._project_conv,_blocks.10._project_conv,_conv_head"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sampling_floor(model, source, layers, per_image, runtime, count) -> float:
    """Images/s of the forward pass and the attributions alone, on decoded images (batches of
    the runtime's photos per batch)."""
    device, batch_size = runtime.device, runtime.photos_per_batch
    pixels = torch.stack([torch.from_numpy(source.load(i).pixels.copy()) for i in range(count)])
    batches = [pixels[i:i + batch_size].to(device) for i in range(0, count, batch_size)]

    def run():
        for n, b in enumerate(batches):
            x = normalize(model, b.permute(0, 3, 1, 2).float() / 255).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), runtime.autocast():
                acts = activations(model, x, set(layers))
            for layer in layers:
                h, w = acts[layer].shape[2:]
                where = np.stack([positions(n * batch_size + i, per_image, 0) for i in range(len(b))])
                attributions(model, x, layer, torch.from_numpy(grid_cells(where, h, w)))

    run()
    synchronize(device)
    start = time.perf_counter()
    run()
    synchronize(device)
    return count / (time.perf_counter() - start)


def umap_alone(count: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (40, 512))
    vectors = (centres[rng.integers(0, 40, count)] + rng.normal(0, 1, (count, 512))).astype(np.float32)
    before = peak_mb()
    start = time.perf_counter()
    made = grid.layout(vectors, "umap")
    seconds = time.perf_counter() - start
    return {"samples": count, "seconds": seconds, "peak_rss_mb": peak_mb(), "rss_before_mb": before,
            "method": made.method}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--layers", default=None)
    parser.add_argument("--photos", type=Path)
    parser.add_argument("--positions", type=int, default=4)
    parser.add_argument("--samples", type=int)
    parser.add_argument("--layout", default="umap", choices=grid.LAYOUTS)
    parser.add_argument("--icon-steps", type=int, default=256)
    parser.add_argument("--levels", help="grid sides, coarse to fine, e.g. 20,40,80 (default: sized to the samples)")
    parser.add_argument("--min-count", type=int, default=5, help="samples a cell needs for an icon")
    parser.add_argument("--unit-steps", type=int, default=512, help="steps of the channel units icons are compared with")
    parser.add_argument("--class-index", type=int, help="also a class atlas of the last layer")
    parser.add_argument("--recipe", default=DEFAULT_RECIPE,
                        help="the recipe of the channel units icons are compared with (icons render as lucid)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per batch of the sampling pass")
    parser.add_argument("--workers", type=int, help="photo-decoding processes (default: every core but one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--cache", type=Path, help="cache folder (default: a temporary one)")
    parser.add_argument("--site", type=Path, help="also write the site here and measure the atlas pages")
    parser.add_argument("--umap", type=int, action="append", help="time UMAP alone on N synthetic vectors")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    report: dict = {}
    if args.umap:
        report["umap"] = [umap_alone(n) for n in args.umap]
        for row in report["umap"]:
            print(f"UMAP {row['samples']:>7} samples x 512: {row['seconds']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB "
                  f"({row['method']})", flush=True)
        if not args.photos:
            _write(args.json, report)
            return 0

    runtime = resolve_runtime(args.device, "auto", photos_per_batch=args.batch_size, workers=args.workers)
    device, precision = runtime.device, runtime.precision
    model = to_device(load_model(args.model, args.weights), device)
    layers = [l.name for l in model.select_layers(args.layers or (LITE_LAYERS if "lite" in args.model else None))]
    cache = args.cache or Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    source = sources.image_folder(args.photos, model, "--photos")
    levels = tuple(int(s) for s in args.levels.split(",")) if args.levels else None
    request = ActivationAtlasRequest(args.photos, layers=",".join(layers), positions=args.positions,
                                     samples=args.samples, layout=args.layout, levels=levels,
                                     min_count=args.min_count, class_index=args.class_index,
                                     icon_steps=args.icon_steps)
    # Icons take their size, steps and recipe from the request; the rest of the build's settings.
    settings = Settings(precision=precision, recipe=args.recipe)
    job = atlas_job(model, source, request, root=cache, runtime=runtime, settings=settings, layers=tuple(layers),
                    samples=args.samples, seed=0)
    print(f"{model.name} ({model.weights}) on {runtime.where}, {precision}; {len(source)} photos, "
          f"{args.positions} positions each; layers {', '.join(layers)}", flush=True)

    floor = sampling_floor(model, source, layers, args.positions, runtime, min(len(source), 4 * args.batch_size))
    rides = job.rides(0)   # none when every layer's samples are in the cache
    sampler = rides[0].consumer if rides else None
    start = time.perf_counter()
    pass_report = stream(model, source, [sampler] if sampler else [], runtime)
    for ride in rides:
        ride.finish(pass_report)   # stores the samples
    sampling_seconds = time.perf_counter() - start
    rate = pass_report.images / sampling_seconds if sampler else 0.0
    report["sampling"] = {"images": pass_report.images, "seconds": sampling_seconds, "rate": rate, "floor": floor,
                          "ratio": floor / rate if rate else None, "skipped": len(pass_report.skipped),
                          "samples_per_layer": pass_report.images * args.positions}
    if sampler:
        print(f"sampling: {rate:.1f} images/s ({pass_report.images} photos, {sampling_seconds:.0f} s); floor (forward + "
              f"attribution) {floor:.1f} images/s: {floor / rate:.2f}x its time", flush=True)
    else:
        print(f"sampling: the samples were in the cache (not measured; use a fresh --cache); floor (forward + "
              f"attribution) {floor:.1f} images/s", flush=True)

    report["atlases"] = []
    for layer in layers + ([layers[-1]] if args.class_index is not None else []):
        class_index = args.class_index if len(report["atlases"]) == len(layers) else None
        before, start = peak_mb(), time.perf_counter()
        record, summary = build_atlas(job, layer, class_index)
        seconds = time.perf_counter() - start
        icons = sum(len(level["cells"]) for level in record["levels"])
        rendered = max(summary.rendered, 1)
        row = {"layer": layer, "class_index": class_index, "samples": record["samples"], "layout": record["layout"],
               "levels": [l["size"] for l in record["levels"]], "icons": icons, "rendered": summary.rendered,
               "atlas_seconds": seconds, "icon_seconds": summary.seconds / rendered, "peak_rss_mb": peak_mb(),
               "rss_before_mb": before}
        report["atlases"].append(row)
        print(f"atlas of {layer}{' (class ' + str(class_index) + ')' if class_index is not None else ''}: "
              f"{record['samples']} samples, layout {record['layout']}, grids {row['levels']}, {icons} icons "
              f"({summary.rendered} rendered, {row['icon_seconds']:.2f} s each); whole atlas {seconds:.0f} s; "
              f"peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)

    # A channel unit of the last layer, at the build's size and steps, timed the same way.
    units = [Unit(layers[-1], i) for i in range(min(8, model.layer(layers[-1]).channels))]
    start = time.perf_counter()
    with runtime.weights_in_bf16(model.module):
        render_batch(model, units, settings.replace(steps=args.unit_steps), runtime)
    synchronize(device)
    unit_seconds = (time.perf_counter() - start) / len(units)
    report["channel_unit_seconds"] = unit_seconds
    icon = report["atlases"][-1]["icon_seconds"]
    print(f"a channel unit ({settings.size} px, {args.unit_steps} steps): {unit_seconds:.2f} s; an icon: {icon:.2f} s "
          f"({icon / unit_seconds:.2f}x)", flush=True)

    if args.site:
        from atlas.site.write import publish
        entries.store_model_card(cache, model.card())   # class names for the labels, as a build stores it
        publish(cache, args.site, say=lambda text, err=False: None)
        pages = sorted(args.site.rglob("atlas*.html"))
        icons_bytes = sum(p.stat().st_size for p in (args.site / "images" / "thumb").glob("*"))
        patches = sum(p.stat().st_size for p in (args.site / "images" / "atlas").glob("*"))
        report["site"] = {"pages": {p.relative_to(args.site).as_posix(): p.stat().st_size for p in pages},
                          "icon_bytes": icons_bytes, "patch_bytes": patches}
        for page in pages:
            print(f"site: {page.relative_to(args.site)} {page.stat().st_size / 1e3:.0f} kB", flush=True)
        print(f"site: icons (thumbnails of every render) {icons_bytes / 1e6:.1f} MB, photo patches {patches / 1e6:.1f} MB")
    _write(args.json, report)
    return 0


def _write(path: Path | None, report: dict) -> None:
    if path:
        path.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    raise SystemExit(main())
