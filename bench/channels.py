"""Channel objectives under each recipe, side by side (issues 8, 14).

A recipe tuned on class logits must not make channel images worse, and there is
no judge for a channel. So this renders channels of EfficientNet-Lite0 (real
weights), from early textures to late parts, with every recipe or candidate
(bench/judges.py's CANDIDATES), the same seeds and steps, and writes:

  a contact sheet   one column per recipe, one row per channel;
  an activation check   per channel, the objective (mean activation over the map)
                    on the untransformed final image under each recipe, beside the
                    best natural photo's (bench/examples.py's scikit-image photos,
                    the ImageNet evaluation view): a new recipe must not lower it.

    python bench/channels.py --recipe lucid --recipe views --steps 256
    python bench/channels.py --recipe views --candidate phase --steps 128 --out docs/images/channels
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atlas.core.settings import DEFAULT_RECIPE, Settings
from atlas.core.units import Unit
from atlas.engine import objectives
from atlas.engine.batching import render
from atlas.examples.top import preprocess
from atlas.model.classifier import normalize, to_device
from atlas.model.forward import activations
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime
from atlas.plan.selection import checked_unit

from contact_sheet import contact_sheet
from examples import write_dataset
from judges import CANDIDATES, chosen

# Two channels of each stage, from the first blocks' colours and textures to the head.
CHANNELS = ("_blocks.1._expand_conv:5", "_blocks.1._project_conv:7", "_blocks.4._expand_conv:20",
            "_blocks.4._project_conv:12", "_blocks.7._expand_conv:30", "_blocks.7._project_conv:40",
            "_blocks.10._expand_conv:40", "_blocks.10._project_conv:60", "_blocks.13._expand_conv:50",
            "_blocks.13._project_conv:100", "_conv_head:100", "_conv_head:700")


def photo_objectives(model, units: list[Unit], size: int, device) -> list[float]:
    """Per unit, the highest channel objective any sample photo reaches."""
    with tempfile.TemporaryDirectory() as folder:
        write_dataset(Path(folder))
        photos = [t for p in sorted(Path(folder).glob("*.png")) if (t := preprocess(p, model)) is not None]
    layers = {u.layer for u in units}
    best = []
    with torch.no_grad():
        acts = activations(model, normalize(model, torch.stack(photos).to(device)), layers)
        for unit in units:
            best.append(float(objectives.channel(unit.layer, unit.index)(acts).max()))
    return best


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", action="append", help=f"recipes to compare (default: views, {DEFAULT_RECIPE})")
    parser.add_argument("--candidate", action="append", default=[], choices=list(CANDIDATES),
                        help="a candidate from bench/judges.py (repeatable)")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--units", default=",".join(CHANNELS), help="LAYER:INDEX list")
    parser.add_argument("--out", type=Path, default=Path("bench/out/channels"))
    args = parser.parse_args()
    runtime = resolve_runtime("auto", "auto")   # batches: the device's default size
    device = runtime.device
    model = to_device(load_model("efficientnet_lite0"), device)
    units = [Unit(*checked_unit(model, spec)) for spec in args.units.split(",")]
    files = [f"{u.layer}-{u.index}.png" for u in units]
    tried = chosen(args.recipe, args.candidate, ["views", DEFAULT_RECIPE])
    columns, report = [], {"units": [f"{u.layer}:{u.index}" for u in units],
                           "photo": photo_objectives(model, units, args.size, device), "recipes": {}}
    for name, candidate in tried.items():
        settings = Settings(size=args.size, steps=args.steps, recipe=name, seed=args.seed,
                            precision=runtime.precision).replace(**dict(candidate.settings))
        start = time.perf_counter()
        results = {r.unit: r for batch in render(model, units, settings, runtime) for r in batch}
        seconds = (time.perf_counter() - start) / len(units)
        folder = args.out / f"{name}-{args.steps}"
        folder.mkdir(parents=True, exist_ok=True)
        for unit, file in zip(units, files):
            Image.fromarray(results[unit].images[0]).save(folder / file)
        columns.append((folder.name, folder))
        report["recipes"][name] = {"seconds_per_unit": seconds,
                                   "objective": [results[u].final_objective for u in units]}
        print(f"{name}: {seconds:.1f} s/unit", flush=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=1))  # a run cut short keeps what it made
    print(activation_table(report))
    print(contact_sheet(columns, files, [label(u) for u in units], args.out / "contact-sheet.jpg"))


def activation_table(report: dict) -> str:
    """Per channel: each recipe's objective, and as a multiple of the best photo's."""
    names = list(report["recipes"])
    lines = ["| channel | best photo | " + " | ".join(names) + " |", "|" + "---|" * (2 + len(names))]
    for n, unit in enumerate(report["units"]):
        photo = report["photo"][n]
        cells = [f"{report['recipes'][r]['objective'][n]:.2f} ({report['recipes'][r]['objective'][n] / photo:.1f}×)"
                 if photo > 0 else f"{report['recipes'][r]['objective'][n]:.2f}" for r in names]
        lines.append(f"| {unit} | {photo:.2f} | " + " | ".join(cells) + " |")
    means = [np.mean(report["recipes"][r]["objective"]) for r in names]
    lines.append("| mean | " + f"{np.mean(report['photo']):.2f} | " + " | ".join(f"{m:.2f}" for m in means) + " |")
    return "\n".join(lines)


def label(unit: Unit) -> str:
    """'_blocks.10._expand_conv', 40 -> 'b10 expand 40' (fits the sheet's margin)."""
    return f"{unit.layer.replace('_blocks.', 'b').replace('._', ' ').replace('_conv', '').strip('_ ')} {unit.index}"


if __name__ == "__main__":
    main()
