"""Channel objectives under each recipe, side by side (issue 8).

A recipe tuned on class logits must not make channel images worse. This
renders a few channels of EfficientNet-Lite0 (real weights), from early
textures to late parts, with every recipe, the same seeds and steps, and
writes a contact sheet: one column per recipe, one row per channel.

    python bench/channels.py --recipe lucid --recipe views --steps 256
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from PIL import Image

from atlas import device as devices
from atlas.models import load_model, to_device
from atlas.optvis.render import render
from atlas.plan import parse_unit
from atlas.settings import Settings
from atlas.units import Unit

from contact_sheet import contact_sheet

CHANNELS = ("_blocks.1._expand_conv:5", "_blocks.4._expand_conv:20", "_blocks.7._expand_conv:30",
            "_blocks.10._expand_conv:40", "_blocks.13._expand_conv:50", "_conv_head:100")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", action="append", help="recipes to compare (default: lucid, views)")
    parser.add_argument("--steps", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--units", default=",".join(CHANNELS), help="LAYER:INDEX list")
    parser.add_argument("--out", type=Path, default=Path("bench/out/channels"))
    args = parser.parse_args()
    device = devices.resolve_device("auto")
    model = to_device(load_model("efficientnet_lite0"), device)
    units = [Unit(*parse_unit(model, spec)) for spec in args.units.split(",")]
    files = [f"{u.layer}-{u.index}.png" for u in units]
    columns = []
    for recipe in args.recipe or ["lucid", "views"]:
        settings = Settings(size=args.size, steps=args.steps, recipe=recipe,
                            precision=devices.resolve_precision("auto", device))
        start = time.perf_counter()
        results = {r.unit: r for batch in render(model, units, settings, device) for r in batch}
        folder = args.out / f"{recipe}-{args.steps}"
        folder.mkdir(parents=True, exist_ok=True)
        for unit, file in zip(units, files):
            Image.fromarray(results[unit].images[0]).save(folder / file)
        columns.append((folder.name, folder))
        print(f"{recipe}: {(time.perf_counter() - start) / len(units):.1f} s/unit, "
              f"mean objective {sum(r.final_objective for r in results.values()) / len(units):.2f}", flush=True)
    print(contact_sheet(columns, files, [label(u) for u in units], args.out / "contact-sheet.jpg"))


def label(unit: Unit) -> str:
    """'_blocks.10._expand_conv', 40 -> 'b10 expand 40' (fits the sheet's margin)."""
    return f"{unit.layer.replace('_blocks.', 'b').replace('._', ' ').replace('_conv', '').strip('_ ')} {unit.index}"


if __name__ == "__main__":
    main()
