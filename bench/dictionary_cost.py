"""What training a layer's dictionary costs on a device: seconds per epoch and peak memory (issue 33).

    python bench/dictionary_cost.py --model vgg16 --weights random --layer features.28 \
        --vectors 1000000 --device cuda --photos DIR --json OUT.json      # step 6 of `make gpu-check`

Collects every position of `--layer` from the photos (atlas.dictionary.collect, the
build's own sampler), then trains the build's default dictionary (TopK, 8× the
channels, k = 32) for `--epochs` on `--vectors` of them: the collected vectors repeated
when the photos give fewer, which times the same arithmetic (the timing is the point,
not the dictionary). Prints and saves seconds per epoch, the projection to the build's
20 epochs of two seeds, and the peak device memory (CUDA) or resident memory (CPU).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.data import sources                                  # noqa: E402
from atlas.data.stream import stream                           # noqa: E402
from atlas.dictionary.collect import VectorSampler              # noqa: E402
from atlas.dictionary.job import DEFAULT_K, MULTIPLE            # noqa: E402
from atlas.dictionary.sae import DictionaryShape                # noqa: E402
from atlas.dictionary.train import Training, fit               # noqa: E402
from atlas.model.classifier import to_device                   # noqa: E402
from atlas.model.loading import load_model                     # noqa: E402
from atlas.model.runtime import resolve_runtime                 # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--layer", default="features.28")
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    runtime = resolve_runtime(args.device, "auto", workers=args.workers)
    model = to_device(load_model(args.model, args.weights), runtime.device)
    source = sources.image_folder(args.photos, model)
    sampler = VectorSampler({args.layer: None}, seed=0, chosen={args.layer: None})
    start = time.perf_counter()
    stream(model, source, [sampler], runtime)
    collect_seconds = time.perf_counter() - start
    found = torch.from_numpy(sampler.arrays(args.layer)["vectors"])
    vectors = found.repeat((args.vectors + len(found) - 1) // len(found), 1)[:args.vectors]
    channels = vectors.shape[1]
    shape = DictionaryShape(channels, MULTIPLE * channels, DEFAULT_K)
    if runtime.is_cuda:
        torch.cuda.reset_peak_memory_stats(runtime.device)
    start = time.perf_counter()
    fit(vectors, shape, Training(epochs=args.epochs), device=runtime.device)
    if runtime.is_cuda:
        torch.cuda.synchronize(runtime.device)
    per_epoch = (time.perf_counter() - start) / args.epochs
    report = {"model": args.model, "layer": args.layer, "device": runtime.where, "photos": len(source),
              "collected": len(found), "collect_seconds": collect_seconds, "vectors": len(vectors),
              "channels": channels, "features": shape.size, "k": shape.k, "seconds_per_epoch": per_epoch,
              "projected_build_minutes": per_epoch * 20 * 2 / 60,
              "peak_memory_mb": (torch.cuda.max_memory_allocated(runtime.device) / 2**20 if runtime.is_cuda
                                 else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    print(f"{args.model} {args.layer} on {runtime.where}: collected {len(found):,} vectors from {len(source)} photos "
          f"in {collect_seconds:.1f} s; {channels} -> {shape.size} features, k={shape.k}: "
          f"{per_epoch:.2f} s per epoch of {len(vectors):,} vectors, the build's 20 epochs x 2 seeds "
          f"{report['projected_build_minutes']:.1f} min; peak memory {report['peak_memory_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
