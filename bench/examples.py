"""Dataset-examples benchmark (issue 7): images/s of the top-k pass on a real model.

Natural photographs at hand offline are scikit-image's bundled sample images
(astronaut, chelsea, coffee, rocket, ...). They are written out as PNGs into a
folder, with a flipped and a cropped variant of each (about 50 images), then
`atlas.examples.job.find_examples` runs one streaming pass over them for a few
layers of the model plus its class-logit layer, and reports:

  images/s     the pass itself (decode + preprocess + forward + running top-k),
               as `atlas build --examples` prints it;
  total        the call, including the crops written and the receptive field;
  cached       the same call again: nothing computed (0 images/s means cached).

Then it prints, for a few classes, the top examples (does "espresso" pick the
coffee cup?). With --site it also runs a small real build with examples,

    atlas build efficientnet_lite0 --preset quick --layers _blocks.15._project_conv
        --channels 3 --classes 285,967 --examples DIR --cache-dir ... --out ...

and, where Playwright and a Chromium are installed, screenshots a unit page.

    python bench/examples.py                       # the pass only
    python bench/examples.py --site                # plus a small site and screenshots

scikit-image is not a dependency of atlas: `pip install scikit-image` if missing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from atlas.data.photos import list_images
from atlas.examples.job import find_examples
from atlas.model.classifier import to_device
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime

# Photographs (and photographic textures) that ship inside scikit-image: no download.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
          "retina", "camera", "coins", "brick", "grass", "gravel", "moon", "clock", "cell")
LAYERS = "_blocks.4._project_conv,_blocks.10._project_conv,_blocks.15._project_conv"
SHOW_CLASSES = (285, 967, 417, 812)   # Egyptian cat, espresso, balloon, space shuttle


def sample_images() -> dict[str, np.ndarray]:
    try:
        import skimage.data as data
    except ImportError:
        sys.exit("this benchmark reads scikit-image's bundled photos: pip install scikit-image")
    images = {name: getattr(data, name)() for name in PHOTOS}
    left, right, _ = data.stereo_motorcycle()
    images.update(motorcycle_left=left, motorcycle_right=right)
    return images


def write_dataset(folder: Path) -> int:
    """Each photo as a PNG, mirrored, and a 60 % centre crop: about 50 images of any size."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, pixels in sample_images().items():
        image = Image.fromarray(np.asarray(pixels)).convert("RGB")
        w, h = image.size
        cw, ch = int(w * 0.6), int(h * 0.6)
        variants = {"": image, "-flip": image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
                    "-crop": image.crop(((w - cw) // 2, (h - ch) // 2, (w + cw) // 2, (h + ch) // 2))}
        for suffix, variant in variants.items():
            variant.save(folder / f"{name}{suffix}.png")
            count += 1
    return count


def screenshot(site: Path, pages: list[str], out: Path) -> list[Path]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("no screenshot: pip install playwright (and apt-get install chromium)")
        return []
    executable = os.environ.get("ATLAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        print("no screenshot: no chromium on PATH")
        return []
    out.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        for name in pages:
            page.goto((site / name).as_uri())
            page.wait_for_load_state("load")
            shot = out / ("examples-" + name.replace("/", "_").replace(".html", ".png"))
            page.screenshot(path=str(shot), full_page=True)
            shots.append(shot)
        browser.close()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--layers", default=LAYERS, help="comma list; the class-logit layer is always added")
    parser.add_argument("--k", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=32, help="photos per batch of the pass")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=None, help="folder for images, cache, site (default: a temp dir)")
    parser.add_argument("--site", action="store_true", help="also build a small real site and screenshot it")
    parser.add_argument("--shots", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="atlas-examples-"))
    images, cache_dir, site = work / "images", work / "cache", work / "site"
    if not images.is_dir():
        write_dataset(images)
    count = len(list_images(images))

    runtime = resolve_runtime(args.device, "auto", photos_per_batch=args.batch_size)
    model = to_device(load_model(args.model), runtime.device)
    layers = [name.strip() for name in args.layers.split(",") if name.strip()] + [model.output_layer]
    print(f"{model.name} ({model.weights}) on {runtime.where}, {torch.get_num_threads()} threads; "
          f"{count} images in {images}; layers {', '.join(layers)}; k={args.k}, batch {args.batch_size}")

    start = time.perf_counter()
    results, report = find_examples(model, layers, images, root=cache_dir, runtime=runtime, k=args.k)
    rate = report.rate
    total = time.perf_counter() - start
    crops = [p for p in (cache_dir / "examples").rglob("*.jpg")]
    named = sum(len(shown) for r in results.values() for shown in r["channels"])
    print(f"crops: {named} examples name {len(set(crops))} crop files "
          f"({sum(p.stat().st_size for p in crops) / 1e6:.1f} MB) after one pass")
    start = time.perf_counter()
    _, cached = find_examples(model, layers, images, root=cache_dir, runtime=runtime, k=args.k)
    cached_rate = cached.rate
    again = time.perf_counter() - start
    if rate == 0:
        print("(these layers were already in the cache: no pass ran; use a fresh --work to measure)")
    print(f"pass: {rate:.1f} images/s over {count} images and {len(layers)} layers "
          f"({sum(len(r['channels']) for r in results.values())} units); "
          f"whole call {total:.1f} s with crops; again: {again:.2f} s, "
          + ("from cache" if cached_rate == 0 else "computed AGAIN (cache miss!)"))
    for layer in layers:
        r = results[layer]
        print(f"  {layer}: {len(r['channels'])} channels, receptive field {r['receptive_field']} px")

    names = model.class_names or []
    for index in SHOW_CLASSES:
        top = results[model.output_layer]["channels"][index][:3]
        label = names[index] if index < len(names) else f"class {index}"
        print(f"  class {index} {label}: " + ", ".join(f"{e['file']} ({e['value']:.2f})" for e in top))

    if not args.site:
        return
    command = ["atlas", "build", args.model, "--preset", "quick", "--layers", "_blocks.15._project_conv",
               "--channels", "3", "--classes", "285,967", "--examples", str(images), "--examples-k", str(args.k),
               "--cache-dir", str(cache_dir), "--out", str(site), "--device", args.device]
    print("$ " + " ".join(command), flush=True)
    executable = Path(sys.executable).with_name("atlas")
    subprocess.run([str(executable) if executable.exists() else "atlas", *command[1:]], check=True)
    slug = next(p.name for p in (site / "models").iterdir())
    pages = [f"models/{slug}/layers/_fc/285.html", f"models/{slug}/layers/_fc/967.html",
             f"models/{slug}/layers/_blocks.15._project_conv/0.html"]
    for shot in screenshot(site, pages, args.shots):
        print(f"screenshot: {shot}")
    print(f"site: {site / 'index.html'}")


if __name__ == "__main__":
    main()
