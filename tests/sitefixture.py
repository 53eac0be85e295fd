"""A tiny cache for the site tests: two models, a few layers, synthetic images.

Nothing here runs the renderer: images are noise and gradients, metadata is made
up in the shape `atlas build` writes. It covers what pages must handle: several
renders of one unit, a failed render, a unit rendered twice with different
settings (the newest wins), a DeepDream layer render, a hostile layer name and a
hostile class name, and reference units both rendered and not.

Dataset examples (what `atlas.examples.find_examples` stores) for three layers of
vgg16: receptive-field crops for features.0 and features.12, whole images for the
class logits, one channel no image excites (all values below zero), a hostile
file name, and an older result for features.12 the site must not show.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from atlas.store import cache
from atlas.store import circuits as stored_circuits, photos as stored_photos
from atlas.core.settings import RECIPE_VERSION, Settings
from atlas.core.units import Unit

HOSTILE = "<script>alert(1)</script>\"'&amp; ü漢"
HOSTILE_LAYER = "features.evil" + HOSTILE
SIZE = 32  # small images keep the suite fast; real builds use 224

VGG16_CONV = [(0, 64), (2, 64), (5, 128), (7, 128), (10, 256), (12, 256), (14, 256),
              (17, 512), (19, 512), (21, 512), (24, 512), (26, 512), (28, 512)]


@dataclass
class FixtureCache:
    root: Path
    # (model, layer, index) of every unit page the site must have
    units: set = field(default_factory=set)
    failed: set = field(default_factory=set)
    stale_key: str = ""      # an older render the site must not show
    fresh_key: str = ""      # the newer render of the same unit
    examples: dict = field(default_factory=dict)   # layer -> key of the shown examples result
    stale_examples_key: str = ""                   # an older result for features.12: not shown
    photo: str = ""                                # digest of the photo with caricatures


EXAMPLES_SIZE = 224
EXAMPLES_DATASET = "/home/someone/private/photos"   # pages show "photos", never the full path
DEAD_CHANNEL = 2   # features.0[2]: every natural image gives a negative channel mean


def _crop(seed: int) -> bytes:
    """A 112 px JPEG that looks a little like a photo crop: soft colour fields and a blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:112, 0:112] / 111.0
    angle = rng.random() * np.pi
    ramp = np.cos(angle) * xx + np.sin(angle) * yy
    base = rng.random(3) * 200 + 30
    pixels = base * (0.55 + 0.45 * ramp[..., None])
    cy, cx = rng.random(2) * 80 + 16
    r = rng.random() * 28 + 12
    blob = np.exp(-(((yy * 111 - cy) ** 2 + (xx * 111 - cx) ** 2) / (2 * r * r)))
    pixels = pixels * (1 - blob[..., None]) + rng.random(3)[None, None] * 255 * blob[..., None]
    stripes = 0.5 + 0.5 * np.sin((xx * np.cos(angle * 2) + yy * np.sin(angle * 2)) * rng.integers(6, 30))
    pixels += (stripes[..., None] - 0.5) * 40 + rng.normal(0, 6, (112, 112, 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


def add_examples(root: Path, card: dict, layer: str, channels: int, k: int, whole: bool,
                 images: int = 48, dataset: str = EXAMPLES_DATASET, mtime: float | None = None,
                 hostile: tuple[int, int] | None = None) -> str:
    """Store a dataset-examples result shaped like `find_examples`' for `layer`.

    Channels share a small pool of crops (a real result has one file per example;
    the pages cannot tell), which keeps the fixture fast.
    """
    key = hashlib.md5(f"{card['name']}|{layer}|{dataset}|{images}|{k}".encode()).hexdigest()
    folder = Path(root) / "examples" / key
    folder.mkdir(parents=True, exist_ok=True)
    pool = 12
    for j in range(pool):
        (folder / f"pool-{j}.jpg").write_bytes(_crop(int(key[:8], 16) + j))
    side = EXAMPLES_SIZE if whole else 64
    result_channels = []
    for c in range(channels):
        best = -0.2 if layer == "features.0" and c == DEAD_CHANNEL else 1.0 + (c % 7) * 0.5
        shown = []
        for r in range(k):
            left, top = (0, 0) if whole else ((c * 37 + r * 53) % (EXAMPLES_SIZE - side),
                                              (c * 11 + r * 29) % (EXAMPLES_SIZE - side))
            name = f"odd/{HOSTILE}.png" if (c, r) == hostile else f"n0{c % 5}/photo_{(c * 7 + r) % 40:03d}.jpg"
            shown.append({"file": name, "value": round(best - abs(best) * 0.08 * r, 6),
                          "box": [left, top, left + side, top + side], "crop": f"{key}/pool-{(c + r) % pool}.jpg"})
        result_channels.append(shown)
    result = {"model": card["name"], "fingerprint": card["fingerprint"], "layer": layer, "dataset": dataset,
              "dataset_fingerprint": key[::-1], "images": images, "k": k, "size": EXAMPLES_SIZE,
              "receptive_field": side, "channels": result_channels}
    path = Path(root) / "examples" / f"{key}.json"
    path.write_text(json.dumps(result))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return key


def _image(seed: int, size: int = SIZE) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 255, size)[None, :, None] * rng.random(3)
    noise = rng.integers(0, 96, (size, size, 3))
    return np.clip(ramp + noise, 0, 255).astype(np.uint8)


def _class_names() -> list[str]:
    names = [f"class number {i}" for i in range(1000)]
    names[1], names[3], names[7], names[30] = "goldfish", "tiger shark", "cock", "bullfrog"
    names[5] = HOSTILE
    return names


def _card(name: str, fingerprint: str, conv: list[tuple[int, int]], extra=()) -> dict:
    layers = [{"name": f"features.{n}", "type": "Conv2d", "channels": c} for n, c in conv]
    layers += [{"name": n, "type": "Conv2d", "channels": c} for n, c in extra]
    layers.append({"name": "classifier.6", "type": "Linear", "channels": 1000})
    return {"slug": f"{name}-{fingerprint[:6]}", "name": name, "weights": "IMAGENET1K_V1",
            "fingerprint": fingerprint, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            "layers": layers, "output_layer": "classifier.6", "class_names": _class_names()}


def make_cache(root: Path) -> FixtureCache:
    root = Path(root)
    fx = FixtureCache(root)
    counter = iter(range(10_000))

    def add(card, layer, index, objective="channel", negative=False, diversity=1,
            failed=False, steps=64, error="CUDA out of memory", params=()):
        n = next(counter)
        unit = Unit(layer, index, objective, negative, diversity, params)
        settings = Settings(size=SIZE, steps=steps)
        key = cache.entry_key(card["name"], card["fingerprint"], unit, settings)
        curve = list(np.log1p(np.arange(steps)) * (1 + n % 3) + np.sin(np.arange(steps)))
        meta = {
            "status": "failed" if failed else "ok", "model": card["name"],
            "fingerprint": card["fingerprint"], "weights": card["weights"],
            "unit": unit.as_dict(), "settings": settings.as_dict(),
            "recipe_version": RECIPE_VERSION, "curve": [] if failed else curve,
            "final_objective": None if failed else curve[-1],
            "final_objectives": [] if failed else [curve[-1]] * diversity,
            "class_probability": (0.25 + n % 5 / 10) if objective in ("logit", "prob") and not failed else None,
            # what the model calls the image: vgg16 features.0 channels draw goldfish (class 1)
            "labels": [] if failed else [[1 if layer == "features.0" else 3, 0.6], [7, 0.2], [30, 0.1], [5, 0.05],
                                         [0, 0.01]],
            "seconds": 1.5 + n, "device": "cpu", "created": f"2025-01-01T00:{n // 60:02d}:{n % 60:02d}+00:00",
        }
        if failed:
            meta["error"] = error
        images = [] if failed else [_image(n * 10 + i) for i in range(diversity)]
        entry = cache.store(root, key, meta, images)
        if unit.kind.page == "unit":
            (fx.failed if failed else fx.units).add((card["slug"], layer, index))
        return entry

    vgg16 = _card("vgg16", "a1b2c3d4e5f6a7b8", VGG16_CONV, extra=[(HOSTILE_LAYER, 8)])
    vgg19 = _card("vgg19", "0f0e0d0c0b0a0908", [(0, 64), (28, 512), (34, 512)])
    cache.store_model_card(root, vgg16)
    cache.store_model_card(root, vgg19)

    for k in (0, 1, 2, 63):
        add(vgg16, "features.0", k)
    add(vgg16, "features.12", 3)
    add(vgg16, "features.12", 3, negative=True)
    add(vgg16, "features.12", 3, diversity=3)
    add(vgg16, "features.12", 3, objective="neuron")
    add(vgg16, "features.12", 105, failed=True, error=f"failed because {HOSTILE}")
    add(vgg16, "features.19", 54)
    fx.stale_key = add(vgg16, "features.28", 54, steps=32).key   # older
    fx.fresh_key = add(vgg16, "features.28", 54, steps=48).key   # newer: shown
    add(vgg16, "features.28", 264)
    add(vgg16, "features.28", 0, objective="deepdream")
    add(vgg16, HOSTILE_LAYER, 0)
    add(vgg16, HOSTILE_LAYER, 1)
    for c in (1, 3, 5):
        add(vgg16, "classifier.6", c, objective="logit")
    add(vgg16, "classifier.6", 1, objective="prob")
    add(vgg16, "classifier.6", 7, objective="logit", failed=True)

    add(vgg19, "features.28", 54)
    add(vgg19, "classifier.6", 1, objective="logit")

    # Connections features.0 -> features.12 and features.28 -> the classes; a random direction;
    # one photo with its caricatures at two layers.
    add_circuits(root, vgg16, "features.0", "features.12", 256, 64)
    add_circuits(root, vgg16, "features.28", "classifier.6", 1000, 512, spatial=False)
    add(vgg16, "features.12", 0, objective="direction", params={"seed": 7, "weights": [0.5, -0.5] * 128})
    fx.photo = add_photo(root)
    for layer in ("features.0", "features.12"):
        add(vgg16, layer, 0, objective="caricature", params={"photo": fx.photo, "power": 1.0})

    old = 1_700_000_000
    fx.stale_examples_key = add_examples(root, vgg16, "features.12", 256, 9, False, images=20, mtime=old)
    fx.examples["features.12"] = add_examples(root, vgg16, "features.12", 256, 9, False,
                                              mtime=old + 60, hostile=(3, 4))
    fx.examples["features.0"] = add_examples(root, vgg16, "features.0", 64, 9, False, mtime=old + 60)
    fx.examples["classifier.6"] = add_examples(root, vgg16, "classifier.6", 1000, 5, True, mtime=old + 60)
    return fx


STRONG_INPUT, INHIBITING_INPUT = 2, 1   # features.12[3]'s strongest rendered inputs: features.0[2], then [1]


def add_circuits(root: Path, card: dict, source: str, target: str, targets: int, sources: int,
                 spatial: bool = True) -> None:
    """Cached expanded weights shaped like `atlas.store.circuits` stores them; features.12[3] is fed
    most strongly (of the rendered features.0 channels) by channel 2, which excites it, then
    by channel 1, which inhibits it."""

    rng = np.random.default_rng(len(source) + targets)
    heat = rng.normal(0, 0.1, (targets, sources, 3, 3) if spatial else (targets, sources, 0, 0))
    if spatial:
        heat[3, STRONG_INPUT] = 2.0
        heat[3, INHIBITING_INPUT] = -1.0
        heat[3, INHIBITING_INPUT, 1, 1] = 0.5
    norm = np.sqrt((heat ** 2).sum((2, 3))) if spatial else np.abs(rng.normal(0, 1, (targets, sources)))
    total = heat.sum((2, 3)) if spatial else rng.normal(0, 1, (targets, sources))
    pair = stored_circuits.Pair(source, target, norm.astype(np.float32), total.astype(np.float32),
                                heat.astype(np.float16), model=card["name"], fingerprint=card["fingerprint"])
    stored_circuits.store(root, hashlib.md5(f"{card['name']}{source}{target}".encode()).hexdigest(), pair)


def add_photo(root: Path) -> str:
    return stored_photos.store(root, _image(424242, SIZE), f"beach/{HOSTILE}.jpg")


def make_full_vgg16(root: Path, size: int = 64, steps: int = 512, negative: bool = False, pool: int = 61) -> int:
    """A cache the size of a full VGG16 atlas: all 4,224 conv channels and 1,000 classes
    (with `negative`, each also negated), metadata shaped as `atlas build` writes it.

    Written straight into the cache layout (image, then metadata; no fsync) rather than
    through `cache.store`, which flushes every file: 10,000 flushes would dominate the
    test. Images come from a pool of `pool` noisy gradients. Returns the entries written.
    """
    from atlas.core.entry import EntryMeta

    root = Path(root)
    card = _card("vgg16", "f0f1f2f3f4f5f6f7", VGG16_CONV)
    cache.store_model_card(root, card)
    images = []
    for seed in range(pool):
        buffer = io.BytesIO()
        Image.fromarray(_image(seed, size)).save(buffer, format="PNG")
        images.append((buffer.getvalue(), hashlib.sha256(buffer.getvalue()).hexdigest()))
    settings = Settings(size=size, steps=steps)
    curve = [float(v) for v in np.log1p(np.arange(steps))]
    units = [Unit(f"features.{n}", i) for n, channels in VGG16_CONV for i in range(channels)]
    units += [Unit("classifier.6", i, "logit") for i in range(1000)]
    units += [Unit(u.layer, u.index, u.objective, negative=True) for u in units] if negative else []
    for n, unit in enumerate(units):
        key = cache.entry_key(card["name"], card["fingerprint"], unit, settings)
        folder = root / "entries" / key[:2]
        folder.mkdir(parents=True, exist_ok=True)
        data, digest = images[n % pool]
        (folder / f"{key}.00000000.0.png").write_bytes(data)
        meta = EntryMeta(unit=unit, model=card["name"], weights=card["weights"], fingerprint=card["fingerprint"],
                         settings=settings.as_dict(), recipe_version=RECIPE_VERSION, curve=tuple(curve),
                         final_objective=curve[-1], final_objectives=(curve[-1],),
                         class_probability=0.5 if unit.objective == "logit" else None, seconds=2.0,
                         device="cpu", created="2025-01-01T00:00:00+00:00").to_dict()
        meta.update(key=key, images=[{"file": f"{key}.00000000.0.png", "sha256": digest}])
        (folder / f"{key}.json").write_text(json.dumps(meta, indent=1, sort_keys=True))
    return len(units)
