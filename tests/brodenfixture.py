"""A tiny dataset in Broden's exact on-disk format, with a model whose channels are planted detectors.

Images are 32 px: a grey (studio) or dark (darkroom) background, one red square
(8x8) and one blue square (6x6) at even offsets, and a few unlabelled green dots.
Masks are at half the image size (16 px), as Broden's are:

    object   1 red square, 2 blue square           (pixel masks)
    color    3 red, 4 blue, 5 grey                 (pixel masks; dark and green pixels unlabelled)
    scene    6 studio, 7 darkroom                  (whole-image labels)

`planted()` is a 1x1 convolution and a ReLU (layer "1") whose channel 0 is
R - G - B (fires on the red square alone), channel 1 B - R - G (the blue square)
and channel 2 G - R - B (the unlabelled green dots): a detector of "red square",
one of "blue square", and a channel unrelated to every concept.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from atlas.model.spec import ModelSpec

SIDE = 32
LABELS = [(1, "red square", "object"), (2, "blue square", "object"), (3, "red", "color"), (4, "blue", "color"),
          (5, "grey", "color"), (6, "studio", "scene"), (7, "darkroom", "scene")]
CATEGORIES = ("color", "object", "part", "material", "scene", "texture")


def planted():
    conv = nn.Conv2d(3, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, -1, -1], [-1, -1, 1], [-1, 1, -1]])[:, :, None, None])
        conv.bias.zero_()
    module = nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
    return module, ModelSpec(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_size=SIDE, resize_size=SIDE)


def _mask(labels: np.ndarray) -> Image.Image:
    rgb = np.zeros((*labels.shape, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1] = labels % 256, labels // 256
    return Image.fromarray(rgb)


def make_broden(root: Path, images: int = 12, seed: int = 0) -> Path:
    """Write the dataset under `root`; returns root."""
    rng = np.random.default_rng(seed)
    (root / "images" / "shapes").mkdir(parents=True, exist_ok=True)
    rows = []
    for n in range(images):
        dark = n % 3 == 2
        pixels = np.full((SIDE, SIDE, 3), 40 if dark else 128, dtype=np.uint8)
        obj = np.zeros((SIDE // 2, SIDE // 2), dtype=np.int64)
        color = np.full((SIDE // 2, SIDE // 2), 0 if dark else 5, dtype=np.int64)
        ry, rx = 2 * rng.integers(0, 6, size=2)             # red square, 8 px, even offsets
        by, bx = 2 * rng.integers(8, 13, size=2)            # blue square, 6 px, away from the red one
        pixels[ry:ry + 8, rx:rx + 8] = (rng.integers(160, 256), 0, 0)
        pixels[by:by + 6, bx:bx + 6] = (0, 0, 255)
        obj[ry // 2:ry // 2 + 4, rx // 2:rx // 2 + 4] = 1
        obj[by // 2:by // 2 + 3, bx // 2:bx // 2 + 3] = 2
        color[ry // 2:ry // 2 + 4, rx // 2:rx // 2 + 4] = 3
        color[by // 2:by // 2 + 3, bx // 2:bx // 2 + 3] = 4
        background = pixels[0, 0].copy() if ry or rx else pixels[-1, -1].copy()
        for _ in range(3):                                   # unlabelled green dots, off both squares
            y, x = 2 * rng.integers(0, SIDE // 2 - 1, size=2)
            if (pixels[y:y + 2, x:x + 2] == background).all():
                pixels[y:y + 2, x:x + 2] = (0, 255, 0)
                color[y // 2, x // 2] = 0
        name = f"shapes/{n:03d}"
        Image.fromarray(pixels).save(root / "images" / f"{name}.jpg" if n % 4 == 3 else root / "images" / f"{name}.png")
        _mask(obj).save(root / "images" / f"{name}_object.png")
        _mask(color).save(root / "images" / f"{name}_color.png")
        image = f"{name}.jpg" if n % 4 == 3 else f"{name}.png"
        rows.append({"image": image, "split": "train", "ih": SIDE, "iw": SIDE, "sh": SIDE // 2, "sw": SIDE // 2,
                     "color": f"{name}_color.png", "object": f"{name}_object.png", "material": "", "part": "",
                     "scene": "7" if dark else "6", "texture": ""})
    with open(root / "index.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["image", "split", "ih", "iw", "sh", "sw", *CATEGORIES])
        writer.writeheader()
        writer.writerows(rows)
    with open(root / "label.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["number", "name", "category", "frequency", "coverage", "syns"])
        writer.writerow([0, "-", "", 0, 0, ""])
        for number, name, category in LABELS:
            writer.writerow([number, name, f"{category}({images})", images, 0.1, ""])
    with open(root / "category.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["name", "first", "last", "count", "frequency"])
        for category in CATEGORIES:
            writer.writerow([category, 0, 0, 0, 0])
    for category in CATEGORIES:
        with open(root / f"c_{category}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["code", "number", "name", "frequency", "coverage"])
            for code, (number, name, _) in enumerate([l for l in LABELS if l[2] == category], 1):
                writer.writerow([code, number, name, images, 0.1])
    return root
