"""How good and how costly dictionary features are on real photos (issue 33).

    .venv/bin/python bench/dictionary.py --photos /work/data/imagenet-sample \
        --layers _blocks.10._project_conv,_blocks.13._project_conv,_blocks.15._project_conv

Photos. A folder (the 1,000 ImageNet sample photos of
github:EliSchwartz/imagenet-sample-images; never commit them), framed as the model's
evaluation frames them. One streaming pass (atlas.data.stream) collects every
position's activation vector of each layer (`atlas.dictionary.collect.VectorSampler`,
all positions); a second pass with no consumer work is the forward floor the
collection is compared with (same photos, same layers, one run, alternating order).

Per layer, with the build's own code (`atlas.dictionary.learn`):
  held out   10 % of the photos (seeded), never trained on
  quality    R² on the held-out vectors, L0, the share of dead features, and the
             stability of two seeds (Hungarian-matched atoms)
  kept       each trained dictionary under --store, keyed by what made it (a rerun loads it)
  photos     R² against the number of training photos (--photo-counts), same held-out set
  cost       seconds per epoch and peak resident memory of training at 10k and 100k
             vectors (--cost-layer), projected linearly to 1M

Prints a JSON report (also written to --out) and a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.data import sources                                     # noqa: E402
from atlas.data.stream import stream                              # noqa: E402
from atlas.dictionary.collect import VectorSampler, held_out      # noqa: E402
from atlas.dictionary.learn import learn                          # noqa: E402
from atlas.dictionary.metrics import quality                      # noqa: E402
from atlas.dictionary.sae import DictionaryShape                  # noqa: E402
from atlas.dictionary.train import Training, fit                  # noqa: E402
from atlas.model.loading import load_model                        # noqa: E402
from atlas.model.runtime import resolve_runtime                   # noqa: E402
from atlas.store import dictionary as stored                      # noqa: E402


class Floor:
    """A consumer that only asks for the layers: the pass's cost without any work of ours."""

    def __init__(self, layers):
        self.layers = frozenset(layers)

    def update(self, batch) -> None:
        pass


def collect(model, source, layers, runtime) -> tuple[dict, dict]:
    """Every position's vectors per layer, and the seconds of collecting against the floor."""
    times = {"collect": [], "floor": []}
    sampler = None
    for what in ("floor", "collect", "floor", "collect"):
        consumer = Floor(layers) if what == "floor" else VectorSampler({l: None for l in layers}, seed=0,
                                                                       chosen={l: None for l in layers})
        start = time.perf_counter()
        stream(model, source, [consumer], runtime)
        times[what].append(time.perf_counter() - start)
        if what == "collect":
            sampler = consumer
    return {layer: sampler.arrays(layer) for layer in layers}, {k: min(v) for k, v in times.items()}


def child_peak(count: int, channels: int, shape: DictionaryShape) -> float:
    """Peak resident MB of a fresh process that trains one epoch on `count` random fp16
    vectors (0: imports alone), so the number is training's and not this script's."""
    code = ("import resource, torch; from atlas.dictionary.sae import DictionaryShape; "
            "from atlas.dictionary.train import Training, fit; "
            f"v = torch.randn({count}, {channels}).half(); "
            f"count = {count}; shape = DictionaryShape(**{shape.as_dict()!r}); "
            "count and fit(v, shape, Training(epochs=1), device=torch.device('cpu')); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--photos", type=Path, required=True)
    parser.add_argument("--layers", default="_blocks.10._project_conv,_blocks.13._project_conv,_blocks.15._project_conv")
    parser.add_argument("--multiple", type=int, default=8)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--kind", default="topk")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--photo-counts", default="250,500")
    parser.add_argument("--cost-layer", default="_blocks.10._project_conv")
    parser.add_argument("--out", type=Path, default=Path("bench/out/dictionary.json"))
    parser.add_argument("--store", type=Path, default=Path("bench/out/dictionary-store"),
                        help="where trained dictionaries are kept (bench/features_vs_channels.py reads them)")
    args = parser.parse_args()

    runtime = resolve_runtime("auto", "auto")
    model = load_model(args.model, "default")
    source = sources.image_folder(args.photos, model)
    layers = args.layers.split(",")
    print(f"{args.model} on {runtime.device}, {len(source)} photos, layers {layers}", flush=True)
    arrays, seconds = collect(model, source, layers, runtime)
    report = {"model": args.model, "device": str(runtime.device), "photos": len(source), "threads": torch.get_num_threads(),
              "collection": {**seconds, "ratio": seconds["collect"] / seconds["floor"]}, "layers": {}}
    print(json.dumps(report["collection"]), flush=True)
    for layer in layers:
        vectors, images = arrays[layer]["vectors"], arrays[layer]["images"]
        channels = vectors.shape[1]
        shape = DictionaryShape(channels, args.multiple * channels, args.k, args.kind)
        training = Training(epochs=args.epochs)
        start = time.perf_counter()
        key = stored.key(bench=args.model, layer=layer, dataset=source.fingerprint(), shape=shape.as_dict(),
                         training=training.as_dict(), holdout=0.1)
        fresh = stored.load_trained(args.store, key, training.seed) is None
        found = learn(vectors, images, shape, training, layer=layer, holdout=0.1, seeds=args.seeds,
                      device=runtime.device, root=args.store, key=key)
        measured = found.quality.as_dict()
        row = {"channels": channels, "size": shape.size, "k": shape.k, "kind": shape.kind, "vectors": len(vectors),
               "train_vectors": found.train_vectors, "held_out_vectors": measured.pop("vectors"), **measured,
               "stability": found.stability,
               "seconds": time.perf_counter() - start if fresh else None, "key": key, "by_photos": {}}
        test = held_out(images, 0.1, training.seed)
        train_photos = np.unique(images[~test])
        for count in [int(c) for c in args.photo_counts.split(",") if c]:
            if count >= len(train_photos):
                continue
            keep = np.isin(images, np.random.default_rng(0).choice(train_photos, count, replace=False))
            model_ = fit(torch.from_numpy(vectors[keep]), shape, training, device=runtime.device)
            measured, _ = quality(model_, torch.from_numpy(vectors[test]), runtime.device)
            row["by_photos"][count] = measured.r2
        row["by_photos"][len(train_photos)] = found.quality.r2
        report["layers"][layer] = row
        print(layer, json.dumps(row), flush=True)
    if args.cost_layer in arrays:
        vectors = torch.from_numpy(arrays[args.cost_layer]["vectors"])
        channels = vectors.shape[1]
        shape = DictionaryShape(channels, args.multiple * channels, args.k, args.kind)
        cost = {"import_only_rss_mb": child_peak(0, channels, shape)}
        for count in (10_000, 100_000):
            picked = vectors[torch.randperm(len(vectors), generator=torch.Generator().manual_seed(0))[:count]]
            start = time.perf_counter()
            fit(picked, shape, Training(epochs=2), device=runtime.device)
            cost[count] = {"seconds_per_epoch": (time.perf_counter() - start) / 2,
                           "child_peak_rss_mb": child_peak(count, channels, shape)}
        per_vector = cost[100_000]["seconds_per_epoch"] / 100_000
        cost["projected_1M_seconds_per_epoch"] = per_vector * 1_000_000
        report["training_cost"] = {"layer": args.cost_layer, **{str(k): v for k, v in cost.items()}}
        print(json.dumps(report["training_cost"]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print("\n| layer | channels | features | k | vectors | R² held out | L0 | dead | stability | R² by photos |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for layer, r in report["layers"].items():
        curve = ", ".join(f"{n}: {v:.3f}" for n, v in r["by_photos"].items())
        print(f"| `{layer}` | {r['channels']} | {r['size']} | {r['k']} | {r['vectors']:,} | {r['r2']:.3f} | "
              f"{r['l0']:.1f} | {r['dead']:.1%} | "
              f"{'one seed' if r['stability'] is None else format(r['stability'], '.3f')} | {curve} |")


if __name__ == "__main__":
    main()
