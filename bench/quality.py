"""Quality benchmark (issue 2): do class visualizations show their class?

Renders the 34 reference classes on the real EfficientNet-Lite0 and reports,
per class and on average: the model's probability for the target class on the
final image, on the image flipped left-right (a view the optimization never
saw), and the image's pixel standard deviation (grey images score low).

    python bench/quality.py --param fourier --param pixel --out bench/out/quality

Targets for the default recipe: mean probability >= 0.95 plain, >= 0.8 flipped,
no image with pixel std < 0.05.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atlas.core.reference import REFERENCE_CLASSES
from atlas.core.settings import Settings
from atlas.core.units import Unit
from atlas.engine.batching import render
from atlas.model.classifier import normalize, to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime


def probabilities(model, images: np.ndarray, classes: list[int], device) -> np.ndarray:
    x = torch.tensor(images, device=device).permute(0, 3, 1, 2).float() / 255
    x = normalize(model, x)
    with torch.no_grad():
        p = model.module(x).softmax(1)
    return p[torch.arange(len(classes)), torch.tensor(classes)].cpu().numpy()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--param", action="append", choices=["fourier", "pixel"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=512)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench/out/quality"))
    args = parser.parse_args()
    runtime = resolve_runtime("auto", args.precision, batch_size=args.batch_size)
    device = runtime.device
    model = to_device(load_model("efficientnet_lite0"), device)
    classes = list(REFERENCE_CLASSES)
    report = {}
    for kind in args.param or ["fourier", "pixel"]:
        settings = Settings(size=args.size, steps=args.steps, param=kind, precision=runtime.precision)
        start = time.perf_counter()
        results = [r for batch in render(model, [Unit(model.output_layer, c, "logit") for c in classes],
                                         settings, runtime) for r in batch]
        seconds = time.perf_counter() - start
        images = np.stack([r.images[0] for r in results])
        plain = probabilities(model, images, classes, device)
        flipped = probabilities(model, images[:, :, ::-1].copy(), classes, device)
        std = images.reshape(len(images), -1).std(1) / 255
        folder = args.out / kind
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for c, img, p, pf, s in zip(classes, images, plain, flipped, std):
            Image.fromarray(img).save(folder / f"{c:03d}.png")
            rows.append({"class": c, "name": REFERENCE_CLASSES[c], "p": float(p), "p_flipped": float(pf), "std": float(s)})
            print(f"{kind:8} {c:4d} {REFERENCE_CLASSES[c]:20} p={p:.3f} flipped={pf:.3f} std={s:.3f}", flush=True)
        report[kind] = {"mean_p": float(plain.mean()), "mean_p_flipped": float(flipped.mean()),
                        "min_std": float(std.min()), "grey": int((std < 0.05).sum()),
                        "seconds": seconds, "seconds_per_unit": seconds / len(classes), "rows": rows,
                        "settings": settings.as_dict(), "device": str(device)}
        print(f"{kind}: mean p {plain.mean():.3f}, flipped {flipped.mean():.3f}, min std {std.min():.3f}, "
              f"grey {(std < 0.05).sum()}, {seconds:.0f} s ({seconds / len(classes):.1f} s/unit)", flush=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
