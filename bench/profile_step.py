"""Where a render step's time goes: the top operators of `render_batch` on one layer.

Warms up on the timed shape, then profiles a few steps with torch.profiler and
prints the operators by self time on the device (CUDA) or the CPU. cuDNN's
autotuner is on, as in builds; --cudnn-benchmark both also times the step with
it off and on (same process, alternately), off profiles without it.

    python bench/profile_step.py --model vgg16 --layer features.2 --size 224 --batch 64
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine.render import render_batch
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--layer", action="append")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--cudnn-benchmark", choices=["off", "on", "both"], default="on")
    args = parser.parse_args()

    runtime = resolve_runtime("auto", "auto")  # on CUDA this turns cuDNN's autotuner on, as builds do
    device = runtime.device
    if args.cudnn_benchmark == "off":
        torch.backends.cudnn.benchmark = False
    model = to_device(load_model(args.model, "random"), device)
    settings = Settings(size=args.size, steps=args.steps, precision=runtime.precision, redirect_steps=0)
    sort = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for layer in args.layer or ["features.2"]:
        objective = "logit" if layer == model.output_layer else "channel"
        channels = model.layer(layer).channels
        units = [Unit(layer, i % channels, objective) for i in range(min(args.batch, channels))]
        with runtime.weights_in_bf16(model.module):
            if args.cudnn_benchmark != "off" and device.type == "cuda":
                modes = [False, True] if args.cudnn_benchmark == "both" else [True]
                for mode in modes * 2:
                    torch.backends.cudnn.benchmark = mode
                    render_batch(model, units, settings.replace(steps=2), runtime)
                    torch.cuda.synchronize(device)
                    start = time.perf_counter()
                    render_batch(model, units, settings, runtime)
                    torch.cuda.synchronize(device)
                    ms = (time.perf_counter() - start) / (len(units) * settings.steps) * 1e3
                    print(f"{layer}: cudnn.benchmark={mode}: {ms:.3f} ms/image-step", flush=True)
            render_batch(model, units, settings.replace(steps=2), runtime)
            with profile(activities=activities) as prof:
                render_batch(model, units, settings, runtime)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
        print(f"== {args.model} {layer}, {len(units)} images, {args.size} px, {settings.precision}, "
              f"{settings.steps} steps ==")
        print(prof.key_averages().table(sort_by=sort, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
