"""Frozen weights held in bf16 against autocast recasting them every step, per layer.

For each layer: ms per image-step of a bf16 render with autocast alone and with
the weights held in bf16 (`atlas.model.device.weights_in_bf16`, what builds do through
`Runtime.weights_in_bf16`), measured
alternately (A B A B) on the same warm batch shape so noise from other work on
the machine falls on both; and the largest pixel difference between the two images.

    python bench/bf16_weights.py --model vgg16 --size 128 --steps 16
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine.render import render_batch
from atlas.model import device as devices
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--layers", default="features.2,features.14,features.28,classifier.6")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    runtime = resolve_runtime("auto", "bf16")   # bf16 asked for: autocast runs both ways
    device = runtime.device
    model = to_device(load_model(args.model, "random"), device)
    settings = Settings(size=args.size, steps=args.steps, precision="bf16", redirect_steps=0)
    print(f"{args.model} (random) on {runtime.where}, bf16, {args.size} px, batch {args.batch}, "
          f"{args.steps} steps, best of {args.repeats}")
    print(f"{'layer':14} {'autocast ms':>12} {'bf16 weights ms':>16} {'speed-up':>9} {'max |Δpixel|':>13}")
    for layer in args.layers.split(","):
        objective = "logit" if layer == model.output_layer else "channel"
        units = [Unit(layer, i, objective) for i in range(args.batch)]
        times = {False: [], True: []}
        images = {}
        for held in (False, True):  # warm both on the timed shape
            with devices.weights_in_bf16(model.module, "bf16" if held else "fp32"):
                render_batch(model, units, settings.replace(steps=2), runtime)
        for _ in range(args.repeats):
            for held in (False, True):
                with devices.weights_in_bf16(model.module, "bf16" if held else "fp32"):
                    start = time.perf_counter()
                    results = render_batch(model, units, settings, runtime)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    times[held].append(time.perf_counter() - start)
                images[held] = np.stack([r.images[0] for r in results]).astype(int)
        plain, fast = (min(times[h]) / (args.batch * args.steps) * 1e3 for h in (False, True))
        diff = np.abs(images[False] - images[True]).max()
        print(f"{layer:14} {plain:12.2f} {fast:16.2f} {plain / fast:8.2f}x {diff:13d}", flush=True)


if __name__ == "__main__":
    main()
