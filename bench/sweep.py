"""Sweep every torchvision classifier through atlas on random weights.

Per model: the input rule, how many layers the catalog offers (and of which
layouts), the default selection (layers and units), and the time to render one
unit of the deepest default layer (random weights, a few steps, a small picture;
the model sees what its input rule allows). Prints a Markdown table for
BENCHMARKS.md and writes bench/out/sweep.json.

    python bench/sweep.py                       # all 80, size 64, 2 steps, fp32
    python bench/sweep.py --models vit_b_16,swin_t --size 128 --steps 4
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from collections import Counter
from pathlib import Path

import torch
import torchvision.models as tvm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine.render import render_batch
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import Runtime, resolve_runtime


def sweep_one(name: str, settings: Settings, runtime: Runtime) -> dict:
    device = runtime.device
    tick = time.perf_counter()
    model = to_device(load_model(name, "random"), device)
    loaded = time.perf_counter() - tick
    defaults = [layer for layer in model.layers if layer.default]
    deepest = max(defaults, key=lambda layer: layer.position)
    unit = Unit(deepest.name, deepest.channels // 2)
    tick = time.perf_counter()
    (result,) = render_batch(model, [unit], settings, runtime)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - tick
    row = {
        "model": name, "rule": str(model.spec.rule), "crop": model.spec.crop_size,
        "layers": len(model.layers) - 1,  # the logits are no hidden layer
        "layouts": dict(Counter(str(layer.layout) for layer in model.layers)),
        "default_layers": len(defaults), "default_units": sum(layer.channels for layer in defaults),
        "unit": unit.label, "render_s": round(seconds, 2), "load_s": round(loaded, 2),
        "ok": result.error is None,
    }
    del model
    gc.collect()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", help="comma list (default: every torchvision classifier)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out" / "sweep.json")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else tvm.list_models(module=tvm)
    runtime = resolve_runtime(args.device, args.precision)
    settings = Settings(size=args.size, steps=args.steps, precision=runtime.precision)
    rows = []
    print("| model | input rule | layers (layouts) | default layers | default units | unit rendered | render s |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        try:
            row = sweep_one(name, settings, runtime)
        except Exception as err:  # a sweep reports every model, crashes included
            row = {"model": name, "ok": False, "error": f"{type(err).__name__}: {err}"[:200]}
            print(f"| {name} | **failed** | {row['error']} | | | | |", flush=True)
        else:
            layouts = ", ".join(f"{k} {v}" for k, v in sorted(row["layouts"].items()))
            print(f"| {name} | {row['rule']} | {row['layers']} ({layouts}) | {row['default_layers']} | "
                  f"{row['default_units']:,} | `{row['unit']}` | {row['render_s']}{'' if row['ok'] else ' (NaN)'} |",
                  flush=True)
        rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": runtime.where, "settings": settings.as_dict(),
                                    "models": rows}, indent=1))
    failed = [r["model"] for r in rows if not r["ok"]]
    print(f"\n{len(rows) - len(failed)}/{len(rows)} models ok on {runtime.where}"
          + (f"; failed: {', '.join(failed)}" if failed else ""))


if __name__ == "__main__":
    main()
