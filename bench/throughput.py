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

Every timed function first runs once on the timed shape: oneDNN and cuDNN
build their kernels for a shape on first use, a one-time cost per build that
would otherwise land in whichever row runs first. The timed run keeps a full
render's share of redirected-ReLU steps (16 of 512), which cost more than a
plain step.

    python bench/throughput.py --model vgg16 --weights random --size 128 --steps 32 --project --linearity
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


def warm_then_time(function, warm_up, device) -> float:
    warm_up()
    return timed(function, device)


def floor_loop(model, layer: str, batch: int, settings: Settings, device) -> None:
    """Forward+backward on what the renderer feeds the model: every view of `batch` images."""
    side = transforms.output_size(settings.recipe_spec, settings.size)
    views = batch * settings.recipe_spec.views
    x = torch.randn(views, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
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
        views = transforms.draw(settings.recipe_spec, settings.steps, generator)[None].to(device)
        captured = {}
        hook = module[unit.layer].register_forward_hook(lambda m, i, o: captured.__setitem__("out", o))
        for step in range(settings.steps):
            optimizer.zero_grad()
            x = (transforms.apply(settings.recipe_spec, image_param.to_image(p), views[:, step]) - mean) / std
            model.module(x)
            (-objectives.channel("out", unit.index)(captured).mean()).backward()  # mean over views
            optimizer.step()
        hook.remove()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=32, help="steps timed per measurement")
    parser.add_argument("--full-steps", type=int, default=512, help="steps assumed for the projection")
    parser.add_argument("--full-size", type=int, default=224, help="size assumed for the projection")
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--layers", default="features.2,features.14,features.28",
                        help="layers compared against the floor and one-by-one (the last one for --linearity)")
    parser.add_argument("--baseline-units", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--recipe", default=Settings().recipe)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--project", action="store_true",
                        help="compare every conv layer and the classes instead, and project the full atlas")
    parser.add_argument("--linearity", action="store_true", help="time two sizes x two unit counts")
    args = parser.parse_args()

    device = devices.resolve_device(args.device)
    model = to_device(load_model(args.model, args.weights), device)
    precision = devices.resolve_precision(args.precision, device)
    full = Settings()
    redirect = round(full.redirect_steps * args.steps / full.steps)
    settings = Settings(size=args.size, steps=args.steps, precision=precision, redirect_steps=redirect,
                        recipe=args.recipe)
    batch = args.batch or devices.default_batch_size(device, settings)
    print(f"{args.model} ({model.weights}) on {devices.describe(device)}, {precision}, {args.size} px, "
          f"recipe {args.recipe}, batch {batch} units, {args.steps} steps per measurement ({redirect} redirected)")

    print(f"{'layer':14} {'ms/img-step':>12} {'floor ms':>9} {'vs floor':>9} {'1-by-1 ms':>10} {'speed-up':>9}")
    if args.project:
        project(model, settings, batch, device, args)
    else:
        for layer in args.layers.split(","):
            compare(model, layer, batch, settings, device, args.baseline_units)
    if args.linearity:
        linearity(model, settings, batch, device, args.layers.split(",")[-1])


def layer_units(model, layer: str, count: int) -> list[Unit]:
    objective = "logit" if layer == model.output_layer else "channel"
    return [Unit(layer, i, objective) for i in range(count)]


def compare(model, layer, batch, settings, device, baseline_units) -> tuple[float, float, float]:
    """ms per image-step of atlas, of the floor and of one-by-one; prints a row."""
    units = layer_units(model, layer, batch)
    warm = settings.replace(steps=2)
    ours = warm_then_time(lambda: render_batch(model, units, settings, device),
                          lambda: render_batch(model, units, warm, device), device)
    floor = warm_then_time(lambda: floor_loop(model, layer, batch, settings, device),
                           lambda: floor_loop(model, layer, batch, warm, device), device)
    fp32 = settings.replace(precision="fp32")
    base_units = units[:baseline_units]
    base = warm_then_time(lambda: one_by_one(model, base_units, fp32, device),
                          lambda: one_by_one(model, base_units[:1], fp32.replace(steps=2), device), device)
    ours, floor = (t / (batch * settings.steps) * 1e3 for t in (ours, floor))
    base = base / (len(base_units) * settings.steps) * 1e3
    print(f"{layer:14} {ours:12.2f} {floor:9.2f} {ours / floor:8.2f}x {base:10.2f} {base / ours:8.2f}x", flush=True)
    return ours, floor, base


def linearity(model, settings, batch, device, layer):
    """Seconds at two sizes and two unit counts: cost should scale with both."""
    print(f"linearity on {layer}: seconds for {settings.steps} steps")
    for size in (settings.size // 2, settings.size):
        row = []
        for count in (batch // 2, batch):
            units = layer_units(model, layer, count)
            sized = settings.replace(size=size)
            row.append(warm_then_time(lambda: render_batch(model, units, sized, device),
                                      lambda: render_batch(model, units, sized.replace(steps=2), device), device))
        print(f"  {size:4d} px: {batch // 2:3d} units {row[0]:7.2f} s, {batch:3d} units {row[1]:7.2f} s "
              f"(x{row[1] / row[0]:.2f} for x2 units)", flush=True)


def project(model, settings, batch, device, args):
    """Full atlas time from measured per-layer rates, scaled to the full size and
    steps, with the floor and one-by-one totals weighted the same way."""
    groups = [(l.name, l.channels) for l in model.layers if l.kind == "conv"]
    groups.append((model.output_layer, model.layer(model.output_layer).channels))
    scale = (args.full_size / args.size) ** 2 * args.full_steps * 1e-3 / 60  # ms/img-step -> min/unit
    totals = [0.0, 0.0, 0.0]
    print(f"projection: every conv channel and every class at {args.full_size} px, {args.full_steps} steps")
    for name, count in groups:
        rates = compare(model, name, batch, settings, device, args.baseline_units)
        for i, rate in enumerate(rates):
            totals[i] += rate * count * scale
        print(f"  {count:5d} units -> {rates[0] * count * scale:8.1f} min", flush=True)
    ours, floor, base = totals
    print(f"projected full atlas ({sum(c for _, c in groups)} units) on {devices.describe(device)}: "
          f"{ours:.1f} min ({ours / 60:.2f} h); floor {floor:.1f} min ({ours / floor:.2f}x); "
          f"one-by-one fp32 {base:.1f} min ({base / ours:.2f}x slower)")


if __name__ == "__main__":
    main()
