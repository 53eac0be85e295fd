"""How many steps a channel image needs (issue 27): its activation against the step count.

A class image is judged by models of other families (`bench/judges.py --steps ...`).
A channel has no judge, so this measures what its optimization is for, at every
step count asked, on the same channels and seeds:

  on the image     the channel's objective on the untransformed final image
  held-out views   its mean over views the optimization never saw: random crops of
                   the recipe's kind drawn from another seed (a picture that only
                   works from the exact views it was optimized under scores low)

each relative to the same channel's value at the most steps asked (the reference,
512 by default), then averaged over channels. The knee is the fewest steps whose
mean reaches `--target` (default 0.95) of the reference on both measures. It also
times each step count's render in the same run (seconds per unit).

    python bench/step_knees.py --steps 128 --steps 256 --steps 384 --steps 512 --json docs/...
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine import transforms
from atlas.engine.batching import render
from atlas.engine.builders import build
from atlas.engine.context import Context
from atlas.model.classifier import normalize, to_device
from atlas.model.forward import activations
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime
from atlas.plan.selection import checked_unit

# Two channels of each stage of EfficientNet-Lite0, from early textures to the head.
CHANNELS = ("_blocks.1._project_conv:7", "_blocks.2._project_conv:5", "_blocks.4._project_conv:12",
            "_blocks.5._project_conv:30", "_blocks.7._project_conv:40", "_blocks.8._project_conv:3",
            "_blocks.10._project_conv:60", "_blocks.11._project_conv:17", "_blocks.13._project_conv:100",
            "_blocks.14._project_conv:9", "_conv_head:100", "_conv_head:700")
HELD_OUT_VIEWS = 16


def held_out(model, unit: Unit, image: np.ndarray, settings: Settings, runtime, seed: int) -> float:
    """The unit's objective averaged over HELD_OUT_VIEWS views drawn from another seed."""
    device = runtime.device
    recipe = settings.recipe_for(unit)
    generator = torch.Generator().manual_seed(10_000 + seed)
    draws = transforms.draw(recipe, HELD_OUT_VIEWS, generator)           # [views, per-step views, P]
    pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float().to(device) / 255
    params = draws.reshape(1, -1, draws.shape[-1]).to(device)             # every draw a view of the one image
    noise = transforms.noise_field(recipe, settings.size, generator)
    views = transforms.apply(recipe, pixels, params, noise[None].to(device) if noise is not None else None)
    measure = build([unit] * views.shape[0], Context(model, runtime))
    with torch.no_grad(), runtime.autocast():
        acts = activations(model, normalize(model, views).contiguous(memory_format=torch.channels_last),
                           set(measure.layers))
    return float(measure(acts).mean())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--units", action="append", help="LAYER:INDEX (default: two per stage of Lite0)")
    parser.add_argument("--steps", type=int, action="append")
    parser.add_argument("--seed", type=int, action="append")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    runtime = resolve_runtime(args.device, "auto")   # batches: the device's default size
    device, precision = runtime.device, runtime.precision
    model = to_device(load_model(args.model), device)
    units = [Unit(*checked_unit(model, text)) for text in (args.units or CHANNELS)]
    steps = sorted(args.steps or [128, 256, 384, 512])
    seeds = args.seed or [0]
    print(f"{model.name} on {runtime.where}, {precision}, {args.size} px; {len(units)} channels, "
          f"steps {steps}, seeds {seeds}", flush=True)
    values: dict[tuple[int, int, Unit], tuple[float, float]] = {}
    seconds: dict[int, float] = {}
    for count in steps:
        seconds[count] = 0.0
        for seed in seeds:
            settings = Settings(size=args.size, steps=count, precision=precision, seed=seed)
            start = time.perf_counter()
            rendered = [r for batch in render(model, units, settings, runtime) for r in batch]
            seconds[count] += time.perf_counter() - start
            for r in rendered:
                values[(count, seed, r.unit)] = (r.final_objective,
                                                 held_out(model, r.unit, r.images[0], settings, runtime, seed))
        seconds[count] /= len(units) * len(seeds)
        print(f"  {count} steps: {seconds[count]:.1f} s per unit", flush=True)

    reference = steps[-1]
    rows = []
    for count in steps:
        ratios = np.array([[values[(count, s, u)][i] / values[(reference, s, u)][i] for s in seeds for u in units]
                           for i in (0, 1)])
        per_seed = [[np.mean([values[(count, s, u)][i] / values[(reference, s, u)][i] for u in units])
                     for s in seeds] for i in (0, 1)]
        rows.append({"steps": count, "image": float(ratios[0].mean()), "held_out": float(ratios[1].mean()),
                     "image_spread": float(np.ptp(per_seed[0])), "held_out_spread": float(np.ptp(per_seed[1])),
                     "seconds_per_unit": seconds[count]})
        print(f"{count:>5} steps: on the image {rows[-1]['image']:.3f} (spread {rows[-1]['image_spread']:.3f}), "
              f"held-out views {rows[-1]['held_out']:.3f} (spread {rows[-1]['held_out_spread']:.3f}) of the "
              f"{reference}-step value; {seconds[count]:.1f} s per unit", flush=True)
    knee = next((r["steps"] for r in rows if r["image"] >= args.target and r["held_out"] >= args.target), reference)
    print(f"knee (fewest steps reaching {args.target:.0%} of {reference} steps on both): {knee}")
    if args.json:
        args.json.write_text(json.dumps({"model": model.name, "device": runtime.where,
                                         "precision": precision, "size": args.size, "units": [u.label for u in units],
                                         "seeds": seeds, "target": args.target, "rows": rows, "knee": knee,
                                         "values": {f"{c}|{s}|{u.label}": v for (c, s, u), v in values.items()}},
                                        indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
