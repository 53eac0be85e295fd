"""Throughput benchmark (issue 5): where the time of a render goes.

For each layer it prints units/s and ms per image-step of atlas's batched
renderer, and two ratios measured in the same run:

  floor     a bare loop of forward+backward of the same truncated model on the
            same batch shape and precision (no parameterization, transforms,
            optimizer or bookkeeping): the cost atlas cannot go below;
  one-by-one  one unit at a time, fp32, the full model run for every step (what
            the reference library does), same recipe otherwise.

Then it projects the full-atlas time (every conv channel + every class) on this
device from the per-layer rates. With --flops it also counts the model FLOPs of
an image-step (forward+backward of every view, torch's FlopCounterMode) and
reports the fraction of the device's bf16 peak: the nominal one for known GPUs
and the one a large bf16 matrix product reaches in the same run.

Every timed function first runs once on the timed shape: oneDNN and cuDNN
build their kernels for a shape on first use, a one-time cost per build that
would otherwise land in whichever row runs first. The timed run keeps a full
render's share of redirected-ReLU steps (16 of 512), which cost more than a
plain step.

The runtime is resolved once, as a build resolves it (`atlas.model.runtime`): on CUDA
each batch's step replays as a CUDA graph and the image side computes in bf16 unless
ATLAS_CUDA_GRAPHS=0 / ATLAS_IMAGE_DTYPE=fp32 say otherwise; the report records both.

    python bench/throughput.py --model vgg16 --weights random --size 128 --steps 32 --project --linearity
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine import objectives, param, transforms
from atlas.engine.batching import batch_size_for
from atlas.engine.render import render_batch
from atlas.model.classifier import to_device
from atlas.model.forward import activations
from atlas.model.hooks import hooks
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime
from atlas.plan.presets import PRESETS

FULL = PRESETS["full"]


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


def floor_loop(model, layer: str, batch: int, settings: Settings, runtime) -> None:
    """Forward+backward on what the renderer feeds the model: every view of `batch` images,
    in the runtime's precision."""
    side = transforms.output_size(settings.recipe_spec, settings.size)
    views = batch * settings.recipe_spec.views
    x = torch.randn(views, 3, side, side, device=runtime.device).contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    for _ in range(settings.steps):
        with runtime.autocast():
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
        with hooks([(module[unit.layer], lambda m, i, o: captured.__setitem__("out", o))]):
            for step in range(settings.steps):
                optimizer.zero_grad()
                x = (transforms.apply(settings.recipe_spec, image_param.to_image(p), views[:, step]) - mean) / std
                model.module(x)
                (-objectives.channel("out", unit.index)(captured).mean()).backward()  # mean over views
                optimizer.step()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vgg16")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=32, help="steps timed per measurement")
    parser.add_argument("--full-steps", type=int, default=FULL["channel_steps"],
                        help="steps of channels in the projection (default: the full preset's)")
    parser.add_argument("--full-class-steps", type=int, default=FULL["steps"],
                        help="steps of class units in the projection (default: the full preset's)")
    parser.add_argument("--from", dest="recorded", type=Path,
                        help="measure nothing: project again from the rows of a recorded report (this script's "
                             ".json, or its printed table), e.g. an H200's under today's steps")
    parser.add_argument("--full-size", type=int, default=224, help="size assumed for the projection")
    parser.add_argument("--batch", type=int, default=None, help="images per batch (default: as a build sizes it)")
    parser.add_argument("--layers", default="features.2,features.14,features.28",
                        help="layers compared against the floor and one-by-one (the last one for --linearity)")
    parser.add_argument("--baseline-units", type=int, default=2)
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--recipe", default=Settings().recipe)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--project", action="store_true",
                        help="compare every conv layer and the classes instead, and project the full atlas")
    parser.add_argument("--flops", action="store_true", help="count FLOPs and report the fraction of bf16 peak")
    parser.add_argument("--linearity", action="store_true", help="time two sizes x two unit counts")
    parser.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="keep cuDNN's autotuner off (builds turn it on)")
    args = parser.parse_args(argv)
    if args.recorded:
        return reproject_report(args.recorded, args)

    runtime = resolve_runtime(args.device, args.precision, batch_size=args.batch)
    device, precision = runtime.device, runtime.precision
    if args.no_cudnn_benchmark:
        torch.backends.cudnn.benchmark = False
    model = to_device(load_model(args.model, args.weights), device)
    full = Settings()
    redirect = round(full.redirect_steps * args.steps / full.steps)
    settings = Settings(size=args.size, steps=args.steps, precision=precision, redirect_steps=redirect,
                        recipe=args.recipe)
    groups = _groups(model) if args.project else args.layers.split(",")
    # The runtime's batch when --batch names one, else measured the way a build sizes it.
    batch = batch_size_for(model, [u for g in groups for u in layer_units(model, g, 8)], settings, runtime)
    report = {"model": args.model, "weights": model.weights, "device": runtime.where,
              "precision": precision, "size": args.size, "recipe": args.recipe, "batch": batch,
              "steps": args.steps, "redirected_steps": redirect, "cuda_graphs": runtime.cuda_graphs,
              "image_dtype": str(runtime.image_dtype).removeprefix("torch."), "rows": []}
    print(f"{args.model} ({model.weights}) on {report['device']}, {precision}, {args.size} px, "
          f"recipe {args.recipe}, batch {batch} images, {args.steps} steps per measurement ({redirect} redirected); "
          f"CUDA graphs {'on' if runtime.cuda_graphs else 'off'}, image side {report['image_dtype']}")
    if args.flops:
        report["matmul_tflops"] = matmul_peak(device)
        report["nominal_tflops"] = nominal_peak(device)
        print(f"bf16 matrix product: {report['matmul_tflops']:.0f} TFLOP/s measured"
              + (f", {report['nominal_tflops']:.0f} nominal" if report["nominal_tflops"] else ""))
    print(f"{'layer':14} {'ms/img-step':>12} {'floor ms':>9} {'vs floor':>9} {'1-by-1 ms':>10} {'speed-up':>9}"
          + (f" {'TFLOP/s':>8} {'of peak':>8}" if args.flops else ""))
    if args.project:
        report.update(project(model, settings, batch, runtime, args, report))
    else:
        for layer in groups:
            report["rows"].append(compare(model, layer, batch, settings, runtime, args, report))
    if args.linearity:
        with runtime.weights_in_bf16(model.module):
            linearity(model, settings, batch, runtime, args.layers.split(",")[-1])
    return report


def _groups(model) -> list[str]:
    return [l.name for l in model.layers if l.kind == "conv"] + [model.output_layer]


def _print_projection(result: dict, where: str) -> None:
    ours, floor, base = (result[k] for k in ("projected_minutes", "floor_minutes", "one_by_one_minutes"))
    print(f"projected full atlas ({result['projected_units']} units) on {where}: "
          f"{ours:.1f} min ({ours / 60:.2f} h); floor {floor:.1f} min ({ours / floor:.2f}x)"
          + (f"; one-by-one fp32 {base:.1f} min ({base / ours:.2f}x slower)" if base else ""))


# A row of the printed table: layer, ms/img-step, floor ms, ratio, [one-by-one ms, speed-up, ...],
# then on the next line "N units -> M min".
_ROW = re.compile(r"^(\S+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+x(?:\s+([\d.]+|nan))?.*\n\s+(\d+) units ->", re.M)


def recorded_rows(path: Path) -> tuple[dict, list[dict]]:
    """(what the report says of its run, its per-layer rows) from this script's .json report
    or from its printed table (older runs kept only that; it is at the projection's size)."""
    text = path.read_text()
    if path.suffix == ".json":
        report = json.loads(text)
        report = report.get("steps", {}).get("throughput", {}).get("measured", report)   # a gpu-check report
        return report, report["rows"]
    rows = [{"layer": m[1], "ms_per_image_step": float(m[2]), "floor_ms": float(m[3]),
             "one_by_one_ms": float(m[4]) if m[4] and m[4] != "nan" else None, "units": int(m[5])}
            for m in _ROW.finditer(text)]
    if not rows:
        raise SystemExit(f"{path}: no rows of a throughput table found")
    return {"device": text.split(" on ", 1)[1].split(",", 1)[0] if " on " in text else "?", "size": None}, rows


def reproject_report(path: Path, args) -> dict:
    """`--from`: the full atlas again from a recorded report's rates, under --full-steps and
    --full-class-steps (the last row is the class logits, as `_groups` orders them)."""
    report, rows = recorded_rows(path)
    size = report.get("size") or args.full_size
    result = projected(rows, output_layer=rows[-1]["layer"], channel_steps=args.full_steps,
                       class_steps=args.full_class_steps, size_ratio=(args.full_size / size) ** 2)
    print(f"{path.name}: {len(rows)} layers measured on {report.get('device', '?')} at {size} px; "
          f"channels {args.full_steps} steps, classes {args.full_class_steps}, at {args.full_size} px")
    _print_projection(result, report.get("device", "?"))
    return {"from": str(path), **result}


def layer_units(model, layer: str, count: int) -> list[Unit]:
    """`count` units of `layer`, cycling through its channels if it has fewer."""
    objective = "logit" if layer == model.output_layer else "channel"
    channels = model.layer(layer).channels
    return [Unit(layer, i % channels, objective) for i in range(count)]


# Dense bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s.
NOMINAL_BF16_TFLOPS = {"H100": 989.4, "H200": 989.4, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def nominal_peak(device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in name), None)


def matmul_peak(device, n: int = 8192, repeats: int = 10) -> float:
    """TFLOP/s of a large bf16 matrix product: what this device reaches in practice."""
    if device.type == "cpu":
        n, repeats = 1024, 3
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    a @ b
    seconds = timed(lambda: [a @ b for _ in range(repeats)], device)
    return 2 * n ** 3 * repeats / seconds / 1e12


def flops_per_image_step(model, layer: str, settings: Settings, runtime) -> float:
    """Model FLOPs of one image's step: forward and backward of every view it takes."""
    counter = FlopCounterMode(display=False)
    with counter:
        floor_loop(model, layer, 1, settings.replace(steps=1), runtime)
    return float(counter.get_total_flops())


def compare(model, layer, batch, settings, runtime, args, report) -> dict:
    """ms per image-step of atlas, of the floor and of one-by-one; prints a row.

    The batch is the build's size for this layer: `batch` images, no more than
    the layer has units (each unit's image is one image here)."""
    device = runtime.device
    units = layer_units(model, layer, min(batch, model.layer(layer).channels))
    count = len(units)
    warm = settings.replace(steps=2)
    with runtime.weights_in_bf16(model.module):  # as a build holds them
        ours = warm_then_time(lambda: render_batch(model, units, settings, runtime),
                              lambda: render_batch(model, units, warm, runtime), device)
        floor = warm_then_time(lambda: floor_loop(model, layer, count, settings, runtime),
                               lambda: floor_loop(model, layer, count, warm, runtime), device)
    fp32 = settings.replace(precision="fp32")
    base_units = units[:args.baseline_units]
    base = float("nan")
    if base_units:
        base = warm_then_time(lambda: one_by_one(model, base_units, fp32, device),
                              lambda: one_by_one(model, base_units[:1], fp32.replace(steps=2), device), device)
        base = base / (len(base_units) * settings.steps) * 1e3
    ours, floor = (t / (count * settings.steps) * 1e3 for t in (ours, floor))
    row = {"layer": layer, "images": count, "ms_per_image_step": ours, "floor_ms": floor, "one_by_one_ms": base}
    line = f"{layer:14} {ours:12.3f} {floor:9.3f} {ours / floor:8.2f}x {base:10.3f} {base / ours:8.2f}x"
    if args.flops:
        row["gflop_per_image_step"] = flops_per_image_step(model, layer, settings, runtime) / 1e9
        row["tflops"] = row["gflop_per_image_step"] / ours  # GFLOP per ms = TFLOP/s
        peak = report.get("nominal_tflops") or report["matmul_tflops"]
        row["fraction_of_peak"] = row["tflops"] / peak
        line += f" {row['tflops']:8.1f} {row['fraction_of_peak']:7.1%}"
    print(line, flush=True)
    return row


def linearity(model, settings, batch, runtime, layer):
    """Seconds at two sizes and two unit counts: cost should scale with both."""
    device = runtime.device
    print(f"linearity on {layer}: seconds for {settings.steps} steps")
    for size in (settings.size // 2, settings.size):
        row = []
        for count in (batch // 2, batch):
            units = layer_units(model, layer, count)
            sized = settings.replace(size=size)
            row.append(warm_then_time(lambda: render_batch(model, units, sized, runtime),
                                      lambda: render_batch(model, units, sized.replace(steps=2), runtime), device))
        print(f"  {size:4d} px: {batch // 2:3d} units {row[0]:7.2f} s, {batch:3d} units {row[1]:7.2f} s "
              f"(x{row[1] / row[0]:.2f} for x2 units)", flush=True)


def projected(rows: list[dict], *, output_layer: str, channel_steps: int, class_steps: int,
              size_ratio: float = 1.0) -> dict:
    """Minutes of a full atlas from per-layer rows (layer, units, ms_per_image_step,
    floor_ms, one_by_one_ms at the measured size): each layer's units times its steps
    (class units take `class_steps`, every other unit `channel_steps`), scaled by
    `size_ratio` (full size / measured size, squared: cost goes with pixels)."""
    per_step = size_ratio * 1e-3 / 60  # ms/img-step -> min/unit-step
    totals = {"projected_minutes": 0.0, "floor_minutes": 0.0, "one_by_one_minutes": 0.0}
    fields = {"projected_minutes": "ms_per_image_step", "floor_minutes": "floor_ms",
              "one_by_one_minutes": "one_by_one_ms"}
    for row in rows:
        steps = class_steps if row["layer"] == output_layer else channel_steps
        for total, field in fields.items():
            if row.get(field) is not None:
                totals[total] += row[field] * row["units"] * steps * per_step
    return {**totals, "projected_units": sum(r["units"] for r in rows), "full_steps": channel_steps,
            "full_class_steps": class_steps}


def project(model, settings, batch, runtime, args, report) -> dict:
    """Full atlas time from measured per-layer rates, scaled to the full size and
    steps, with the floor and one-by-one totals weighted the same way."""
    size_ratio = (args.full_size / args.size) ** 2
    flops = 0.0
    print(f"projection: every conv channel and every class at {args.full_size} px, {args.full_steps} steps "
          f"({args.full_class_steps} for classes)")
    for name in _groups(model):
        row = compare(model, name, batch, settings, runtime, args, report)
        row["units"] = model.layer(name).channels
        flops += row.get("gflop_per_image_step", 0.0) * row["units"]
        row["projected_minutes"] = projected([row], output_layer=model.output_layer, channel_steps=args.full_steps,
                                             class_steps=args.full_class_steps, size_ratio=size_ratio)["projected_minutes"]
        report["rows"].append(row)
        print(f"  {row['units']:5d} units -> {row['projected_minutes']:8.1f} min", flush=True)
    result = projected(report["rows"], output_layer=model.output_layer, channel_steps=args.full_steps,
                       class_steps=args.full_class_steps, size_ratio=size_ratio)
    _print_projection(result, runtime.where)
    if args.flops:
        peak = report.get("nominal_tflops") or report["matmul_tflops"]
        measured_minutes = sum(r["ms_per_image_step"] * r["units"] for r in report["rows"]) * args.steps / 6e4
        achieved = flops * args.steps / 1e3 / (measured_minutes * 60)  # TFLOP/s over the whole atlas's mix
        result["atlas_tflops"], result["atlas_fraction_of_peak"] = achieved, achieved / peak
        print(f"whole atlas mix: {achieved:.1f} TFLOP/s, {achieved / peak:.1%} of bf16 peak")
    return result


if __name__ == "__main__":
    main()
