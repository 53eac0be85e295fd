"""Network dissection: the passes' speed against the model's forward-only floor, and memory.

    python bench/dissection.py --photos /work/data/imagenet-sample             # Lite0, the demo's layers, colours
    python bench/dissection.py --photos DIR --limit 250 --limit 1000           # memory at two dataset sizes
    python bench/dissection.py --model vgg16 --weights random --broden-project  # on a GPU: full Broden, 13 layers

For each dataset size it measures, on one device, batch and image size:

  floor       forward passes alone, to the deepest dissected layer, over images
              already decoded and on the device (what no pass can beat)
  quantiles   pass 1: decode in workers + forward + the per-unit sketch
  IoU         pass 2: decode + forward + resample, threshold and count against the masks
  peak RSS    the process's peak resident memory after the passes

and prints each pass's images/s and its time over the floor's. The passes are the
dissection job's own two stages (`atlas.dissection.job`), each read alone here so
each is timed; `--batch-size` photos per batch, `--workers` decoding processes (the
runtime's, `atlas.model.runtime`). `--broden-project`
scales the measured per-image cost of both passes to Broden (63,305 images at
224 px). The dissection itself is printed at the end: per layer the units that pass
IoU 0.04 on the whole set (Bau et al.'s rule), those confirmed on both halves of the
photos (atlas's), and the dead units.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.data.concepts import open_concepts
from atlas.data.stream import stream
from atlas.dissection.job import dissection_job
from atlas.store import dissection as stored_dissection
from atlas.model.classifier import normalize, to_device
from atlas.model.forward import activations
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime

LITE_LAYERS = ("_conv_stem,_blocks.0._project_conv,_blocks.2._project_conv,_blocks.4._project_conv,"
               "_blocks.7._project_conv,_blocks.10._project_conv,_blocks.14._project_conv,"
               "_blocks.15._project_conv,_conv_head")
BRODEN_IMAGES = 63_305


def floor(model, source, indices, layers, runtime) -> float:
    """Images per second of the forward pass alone, on images decoded beforehand (batches
    of the runtime's photos per batch, in its precision)."""
    device, batch_size = runtime.device, runtime.photos_per_batch
    pixels = torch.stack([torch.from_numpy(source.load(i).pixels.copy()) for i in indices])
    batches = [pixels[i:i + batch_size].to(device) for i in range(0, len(pixels), batch_size)]
    run = lambda: [activations(model, normalize(model, b.permute(0, 3, 1, 2).float() / 255)  # noqa: E731
                               .contiguous(memory_format=torch.channels_last), set(layers)) for b in batches]
    with torch.no_grad(), runtime.autocast():
        run()   # warm-up (oneDNN primitives, cuDNN autotuning)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
    return len(indices) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--layers", default=None, help="comma list (default: Lite0's demo layers, VGG16's 13 convs)")
    parser.add_argument("--photos", type=Path, help="a concept dataset or any photo folder (colours)")
    parser.add_argument("--limit", type=int, action="append", help="images to use (repeatable: memory at each)")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per batch of the passes")
    parser.add_argument("--workers", type=int, default=None,
                        help="photo-decoding processes (default: every core but one)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--broden-project", action="store_true", help="project both passes to Broden's 63,305 images")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    runtime = resolve_runtime(args.device, args.precision, photos_per_batch=args.batch_size, workers=args.workers)
    device, precision = runtime.device, runtime.precision
    model = to_device(load_model(args.model, args.weights), device)
    default = LITE_LAYERS if "lite" in args.model else ",".join(l.name for l in model.layers if l.kind == "conv")
    layers = [l.name for l in model.select_layers(args.layers or default)]
    work = Path(tempfile.mkdtemp(prefix="atlas-dissect-"))
    photos = args.photos or _synthetic(work / "photos", 256)
    source = open_concepts(photos, model)
    print(f"{model.name} ({model.weights}) on {runtime.where}, {precision}; {len(layers)} layers "
          f"({sum(model.layer(l).channels for l in layers)} units); {source.kind} concepts of {photos} "
          f"({len(source)} images); batch {args.batch_size}, mask {source.mask_size} px", flush=True)

    rows = []
    for limit in args.limit or [len(source)]:
        indices = list(range(min(limit, len(source))))
        cache = work / f"cache-{limit}"
        job = dissection_job(model, layers, source, root=cache, runtime=runtime, shard=(1, 1))
        base = floor(model, source, indices[:min(len(indices), 8 * args.batch_size)], layers, runtime)
        # Stage 0 (quantile sketches, then the thresholds), stage 1 (IoU counts, then the result).
        sketches = job.quantile_consumer(device)
        first = stream(model, source, [sketches], runtime, indices=indices)
        job.finish_quantiles(sketches, first)
        counter = job.counts_consumer(device)
        second = stream(model, source, [counter], runtime, indices=indices)
        job.store_counts(counter, second)
        job.merge_counts()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        row = {"images": len(indices), "floor": base, "quantiles": first.rate, "iou": second.rate,
               "quantiles_x": base / first.rate, "iou_x": base / second.rate,
               "whole_x": base * (first.seconds + second.seconds) / len(indices), "peak_rss_mb": peak,
               "skipped": len(first.skipped)}
        rows.append(row)
        print(f"{len(indices):>6} images: floor {base:.1f} images/s; quantiles {first.rate:.1f} images/s "
              f"({row['quantiles_x']:.2f}x the floor's time); IoU {second.rate:.1f} images/s "
              f"({row['iou_x']:.2f}x); both passes {row['whole_x']:.2f}x; peak RSS {peak:.0f} MB; "
              f"skipped {row['skipped']}", flush=True)
        if args.broden_project:
            seconds = BRODEN_IMAGES * (1 / first.rate + 1 / second.rate)
            print(f"  projected full Broden ({BRODEN_IMAGES:,} images), {len(layers)} layers: "
                  f"{seconds / 60:.1f} min (quantiles {BRODEN_IMAGES / first.rate / 60:.1f}, "
                  f"IoU {BRODEN_IMAGES / second.rate / 60:.1f})", flush=True)
            row["broden_minutes"] = seconds / 60

    results = job.results()
    for layer in layers:
        result = results.get(layer)
        if result is None:
            continue
        detectors = [result.detects(u) for u in range(result.units)]
        whole_set = sum(result.passes_whole_set(u) is not None for u in range(result.units))
        dead = len(stored_dissection.dead_units(result))
        found = [result.names[k] for k in detectors if k is not None]
        counts = {name: found.count(name) for name in sorted(set(found), key=found.count, reverse=True)}
        print(f"  {layer:>28}: {whole_set:>4} of {result.units:>4} units pass IoU 0.04 on the whole set, "
              f"{len(found):>4} confirmed on both halves ({result.half_images[0]}/{result.half_images[1]} photos), "
              f"{dead} dead; {', '.join(f'{k} {v}' for k, v in list(counts.items())[:6])}")
        rows[-1].setdefault("layers", {})[layer] = {"units": result.units, "whole_set": whole_set,
                                                    "detectors": len(found), "dead": dead, "concepts": counts}
    if args.json:
        args.json.write_text(json.dumps({"model": model.name, "device": runtime.where,
                                         "precision": precision, "rows": rows}, indent=1))
    return 0


def _synthetic(folder: Path, count: int) -> Path:
    """Random photos, where no real folder is given (speed only: their concepts mean nothing)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in range(count):
        Image.fromarray(rng.integers(0, 256, size=(256, 320, 3), dtype=np.uint8)).save(folder / f"{n}.jpg")
    return folder


if __name__ == "__main__":
    raise SystemExit(main())
