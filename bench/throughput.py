"""Throughput benchmark (issue 5): where the time of a render goes.

For each layer it prints units/s and ms per image-step of atlas's batched
renderer, and two ratios measured in the same run:

  floor     a bare loop of forward+backward of the same truncated model on the
            same batch shape and precision (no parameterization, transforms,
            optimizer or bookkeeping): the cost atlas cannot go below;
  one-by-one  one unit at a time, fp32, the full model run for every step (what
            the reference library does), same recipe otherwise.

Then it projects the full-atlas time (every conv channel + every class) on this
device from the per-layer rates.

    python bench/throughput.py --model vgg16 --weights random --size 128 --steps 8
"""

from __future__ import annotations

import argparse
import time

import torch

from atlas import device as devices
from atlas.models import load_model, to_device
from atlas.optvis import objectives, param, transforms
from atlas.optvis.hooks import activations
from atlas.optvis.render import render_batch
from atlas.settings import Settings
from atlas.units import Unit


def timed(function, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    function()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def floor_loop(model, layer: str, batch: int, settings: Settings, device) -> None:
    side = transforms.output_size(settings.size)
    x = torch.randn(batch, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    for _ in range(settings.steps):
        with devices.autocast(device, settings.precision):
            out = activations(model, x, {layer})[layer]
        out.float().mean().backward()


def one_by_one(model, units: list[Unit], settings: Settings, device) -> None:
    """The reference library's way: batch 1, fp32, the whole model every step."""
    image_param = param.make(settings.param, settings.size, settings.decay_power, device)
    mean = torch.tensor(model.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.std, device=device).view(1, 3, 1, 1)
    module = dict(model.module.named_modules())
    for unit in units:
        generator = torch.Generator().manual_seed(unit.index)
        p = image_param.init(generator)[None].to(device).requires_grad_()
        optimizer = torch.optim.Adam([p], lr=settings.lr)
        views = transforms.draw(settings.steps, generator)[None].to(device)
        captured = {}
        hook = module[unit.layer].register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
        for step in range(settings.steps):
            optimizer.zero_grad()
            x = (transforms.apply(image_param.to_image(p), views[:, step]) - mean) / std
            model.module(x)
            (-objectives.channel("out", unit.index)(captured).sum()).backward()
            optimizer.step()
        hook.remove()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8, help="steps timed per measurement")
    parser.add_argument("--full-steps", type=int, default=512, help="steps assumed for the projection")
    parser.add_argument("--full-size", type=int, default=224, help="size assumed for the projection")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--layers", default="features.2,features.14,features.28",
                        help="layers compared against the floor and one-by-one")
    parser.add_argument("--baseline-units", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--project", action="store_true", help="time every conv layer + classes and project")
    parser.add_argument("--linearity", action="store_true", help="time two sizes x two unit counts")
    args = parser.parse_args()

    device = devices.resolve_device(args.device)
    model = to_device(load_model(args.model, args.weights), device)
    precision = devices.resolve_precision(args.precision, device, model.module)
    settings = Settings(size=args.size, steps=args.steps, precision=precision)
    batch = args.batch or devices.default_batch_size(device, args.size)
    print(f"{args.model} ({model.weights}) on {devices.describe(device)}, {precision}, "
          f"{args.size} px, batch {batch}, {args.steps} steps per measurement")

    print(f"{'layer':14} {'units/s':>9} {'ms/img-step':>12} {'floor ms':>9} {'vs floor':>9} {'1-by-1 ms':>10} {'speed-up':>9}")
    for layer in args.layers.split(","):
        units = [Unit(layer, i, "logit" if layer == model.output_layer else "channel") for i in range(batch)]
        render_batch(model, units[:2], settings.replace(steps=2), device)  # warm-up
        ours = timed(lambda: render_batch(model, units, settings, device), device)
        floor = timed(lambda: floor_loop(model, layer, batch, settings, device), device)
        fp32 = settings.replace(precision="fp32")
        base_units = units[:args.baseline_units]
        base = timed(lambda: one_by_one(model, base_units, fp32, device), device)
        per_image_step = ours / (batch * args.steps) * 1e3
        floor_step = floor / (batch * args.steps) * 1e3
        base_step = base / (len(base_units) * args.steps) * 1e3
        print(f"{layer:14} {batch / ours * args.steps / args.full_steps:9.3f} {per_image_step:12.2f} "
              f"{floor_step:9.2f} {per_image_step / floor_step:8.2f}x {base_step:10.2f} {base_step / per_image_step:8.2f}x",
              flush=True)

    if args.linearity:
        linearity(model, settings, batch, device, args.layers.split(",")[-1])
    if args.project:
        project(model, settings, batch, device, args)


def linearity(model, settings, batch, device, layer):
    """Seconds at two sizes and two unit counts: cost should scale with both."""
    print(f"linearity on {layer}: seconds for {settings.steps} steps")
    for size in (settings.size // 2, settings.size):
        row = []
        for count in (batch // 2, batch):
            units = [Unit(layer, i) for i in range(count)]
            render_batch(model, units[:1], settings.replace(size=size, steps=1), device)
            row.append(timed(lambda: render_batch(model, units, settings.replace(size=size), device), device))
        print(f"  {size:4d} px: {batch // 2:3d} units {row[0]:7.2f} s, {batch:3d} units {row[1]:7.2f} s "
              f"(x{row[1] / row[0]:.2f} for x2 units)")


def project(model, settings, batch, device, args):
    """Full atlas time from measured per-layer rates, scaled to the full size and steps."""
    total = 0.0
    groups = [(l.name, l.channels, "channel") for l in model.layers if l.kind == "conv"]
    groups.append((model.output_layer, model.layer(model.output_layer).channels, "logit"))
    scale = (args.full_size / args.size) ** 2 * args.full_steps / args.steps
    for name, count, objective in groups:
        units = [Unit(name, i, objective) for i in range(batch)]
        seconds = timed(lambda: render_batch(model, units, settings, device), device)
        layer_total = seconds / batch * count * scale
        total += layer_total
        print(f"  {name:14} {count:5d} units  {layer_total / 60:8.1f} min", flush=True)
    print(f"projected full atlas at {args.full_size} px, {args.full_steps} steps: {total / 60:.1f} min "
          f"({total / 3600:.2f} h) on {devices.describe(device)}")


if __name__ == "__main__":
    main()
