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

and prints each pass's images/s and its time over the floor's. `--broden-project`
scales the measured per-image cost of both passes to Broden (63,305 images at
224 px). The dissection itself (the detectors per layer) is printed at the end.
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

from atlas.data import stream as dataset
from atlas.model import device as devices
from atlas.data.concepts import open_concepts
from atlas.dissection.job import dissection_job
from atlas.model.loading import load_model
from atlas.model.classifier import normalize, to_device
from atlas.model.forward import activations

LITE_LAYERS = ("_conv_stem,_blocks.0._project_conv,_blocks.2._project_conv,_blocks.4._project_conv,"
               "_blocks.7._project_conv,_blocks.10._project_conv,_blocks.14._project_conv,"
               "_blocks.15._project_conv,_conv_head")
BRODEN_IMAGES = 63_305


def floor(model, source, indices, layers, device, batch_size, precision) -> float:
    """Images per second of the forward pass alone, on images decoded beforehand."""
    pixels = torch.stack([torch.from_numpy(source.load(i).pixels.copy()) for i in indices])
    batches = [pixels[i:i + batch_size].to(device) for i in range(0, len(pixels), batch_size)]
    run = lambda: [activations(model, normalize(model, b.permute(0, 3, 1, 2).float() / 255)  # noqa: E731
                               .contiguous(memory_format=torch.channels_last), set(layers)) for b in batches]
    with torch.no_grad(), devices.autocast(device, precision):
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
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--broden-project", action="store_true", help="project both passes to Broden's 63,305 images")
    parser.add_argument("--json", type=Path, help="also write the numbers here")
    args = parser.parse_args()

    device = devices.resolve_device(args.device)
    precision = devices.resolve_precision(args.precision, device)
    model = to_device(load_model(args.model, args.weights), device)
    default = LITE_LAYERS if "lite" in args.model else ",".join(l.name for l in model.layers if l.kind == "conv")
    layers = [l.name for l in model.select_layers(args.layers or default)]
    work = Path(tempfile.mkdtemp(prefix="atlas-dissect-"))
    photos = args.photos or _synthetic(work / "photos", 256)
    source = open_concepts(photos, model)
    print(f"{model.name} ({model.weights}) on {devices.describe(device)}, {precision}; {len(layers)} layers "
          f"({sum(model.layer(l).channels for l in layers)} units); {source.kind} concepts of {photos} "
          f"({len(source)} images); batch {args.batch_size}, mask {source.mask_size} px", flush=True)

    rows = []
    for limit in args.limit or [len(source)]:
        indices = list(range(min(limit, len(source))))
        cache = work / f"cache-{limit}"
        job = dissection_job(model, layers, source, cache, shard=(1, 1), precision=precision)
        base = floor(model, source, indices[:min(len(indices), 8 * args.batch_size)], layers, device,
                     args.batch_size, precision)
        sketches = job.quantile_consumer(device)
        first = dataset.stream(model, source, [sketches], device, args.batch_size, args.workers, indices, precision)
        job.finish_quantiles(sketches, first)
        counter = job.counts_consumer(device)
        second = dataset.stream(model, source, [counter], device, args.batch_size, args.workers, indices, precision)
        job.finish_counts(counter, second)
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
        found = [result.names[k] for k in detectors if k is not None]
        counts = {name: found.count(name) for name in sorted(set(found), key=found.count, reverse=True)}
        print(f"  {layer:>28}: {len(found):>4} of {result.units:>4} units detect a concept "
              f"({len(found) / result.units:.0%}); {', '.join(f'{k} {v}' for k, v in list(counts.items())[:6])}")
        rows[-1].setdefault("layers", {})[layer] = {"units": result.units, "detectors": len(found), "concepts": counts}
    if args.json:
        args.json.write_text(json.dumps({"model": model.name, "device": devices.describe(device),
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
