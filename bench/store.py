"""What storing costs a build: rendering time against the render-and-store loop.

Renders the same cheap plan (many units, few steps, so storing weighs as much
as it can) twice into fresh caches: once storing each batch between batches,
once on the background writer. Prints, for each, the time the batches spent
rendering (their own clocks), the loop's wall time and the difference per unit:
with the writer the loop should be rendering plus a small constant.

    python bench/store.py --units 128 --size 224 --steps 4
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime
from atlas.pictures import render as builds
from atlas.plan.work import make_plan


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="tests.tinynet:tiny_vgg")
    parser.add_argument("--layer", default="features.5")
    parser.add_argument("--units", type=int, default=64, help="at most 4x the layer's channels")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    runtime = resolve_runtime("auto", "fp32", batch_size=args.batch)
    model = to_device(load_model(args.model, "random"), runtime.device)
    channels = model.layer(args.layer).channels
    settings = Settings(size=args.size, steps=args.steps, precision=runtime.precision)
    print(f"{args.model} {args.layer} on {runtime.where}: {args.units} units, {args.size} px, "
          f"{args.steps} steps, batch {args.batch}")
    print(f"{'storing':12} {'rendering s':>12} {'loop s':>8} {'overhead s':>11} {'ms/unit':>8}")
    for repeat in range(args.repeats):
        for background in (False, True):
            # distinct seeds per run, so nothing is cached and every run renders everything
            seeded = settings.replace(seed=repeat * 2 + background)
            units = [Unit(args.layer, i, objective, negative) for objective in ("channel", "neuron")
                     for negative in (False, True) for i in range(channels)][:args.units]
            with tempfile.TemporaryDirectory() as root:
                plan = make_plan(model, units, seeded, Path(root))
                rendering = [0.0]
                real = builds.render   # the batch loop render_plan calls

                def timed_render(*a, **k):
                    for results in real(*a, **k):
                        rendering[0] += results[0].seconds * len(results)
                        yield results

                builds.render = timed_render
                try:
                    start = time.perf_counter()
                    builds.render_plan(model, plan, seeded, runtime, root=Path(root), background=background)
                    loop = time.perf_counter() - start
                finally:
                    builds.render = real
            overhead = loop - rendering[0]
            print(f"{'background' if background else 'in line':12} {rendering[0]:12.2f} {loop:8.2f} "
                  f"{overhead:11.2f} {overhead / len(units) * 1e3:8.1f}", flush=True)


if __name__ == "__main__":
    main()
