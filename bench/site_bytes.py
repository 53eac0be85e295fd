"""Site bytes (issue 15): bytes per unit of the published site, per format, against the look.

Reads a cache of real renders (make one once, e.g. 34 reference classes and 60
channels of EfficientNet-Lite0 at 224 px, 128 steps) and, for each candidate
format of the full image and of the thumbnail, reports:

  KB        mean bytes per image;
  PSNR, SSIM against the lossless source (for thumbnails: against a lossless
            Lanczos downscale to the same size), luma, mean over images, and
            the worst image's SSIM;
  ms        encode time per image on this machine.

For the chosen full-image format it scores the class units with the judges of
bench/judges.py (EfficientNet-Lite1 and Lite2) on the PNG and on the published
image: equal within noise means the format hides nothing the class needs.
With --site it writes the site with the current code and, with --before DIR (a
checkout of the previous version), with that code, and prints bytes per unit
by kind of file.

    python bench/site_bytes.py --cache bench/out/lite0-224 --judges --site --before /tmp/atlas-before
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from atlas.store import cache
from atlas.site import FULL, THUMB, ImageFormat, measure

FULL_CANDIDATES = [ImageFormat("full", "PNG", 0)] + [
    ImageFormat("full", "WEBP", q, effort=4) for q in (75, 80, 85, 90, 95)] + [
    ImageFormat("full", "AVIF", q, effort=4) for q in (60, 70, 80, 90)] + [
    ImageFormat("full", "JPEG", q) for q in (85, 90, 95)]
THUMB_CANDIDATES = [ImageFormat("thumb", "WEBP", q, side=side) for side in (128, 160, 192) for q in (70, 80, 90)]


def luma(pixels: np.ndarray) -> torch.Tensor:
    x = torch.tensor(pixels, dtype=torch.float64) / 255
    return (0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2])[None, None]


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Structural similarity of the luma, 11 px Gaussian window (sigma 1.5), as Wang et al."""
    x, y = luma(a), luma(b)
    g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / (2 * 1.5 ** 2))
    g = (g / g.sum())
    w = (g[:, None] * g[None, :])[None, None]
    blur = lambda t: F.conv2d(t, w)  # noqa: E731
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(s.mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255 ** 2 / mse))


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def trial(kind: ImageFormat, sources: list[Path]) -> dict:
    sizes, psnrs, ssims, seconds = [], [], [], 0.0
    for path in sources:
        with Image.open(path) as image:
            image.load()
            reference = image.convert("RGB")
            if kind.side and max(reference.size) > kind.side:
                reference = reference.copy()
                reference.thumbnail((kind.side, kind.side), Image.Resampling.LANCZOS)
            start = time.perf_counter()
            data = kind.encode(image)
            seconds += time.perf_counter() - start
        sizes.append(len(data))
        a, b = np.asarray(reference), decode(data)
        psnrs.append(psnr(a, b))
        ssims.append(ssim(a, b))
    finite = [p for p in psnrs if np.isfinite(p)]
    return {"format": f"{kind.codec} q{kind.quality}" + (f" {kind.side} px" if kind.side else ""),
            "kb": np.mean(sizes) / 1e3, "psnr": np.mean(finite) if finite else float("inf"),
            "ssim": float(np.mean(ssims)), "worst_ssim": float(np.min(ssims)),
            "ms": seconds / len(sources) * 1e3}


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}\n| format | KB/image | PSNR dB | SSIM mean | SSIM worst | encode ms |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['format']} | {r['kb']:.1f} | {r['psnr']:.1f} | {r['ssim']:.4f} | {r['worst_ssim']:.4f} | {r['ms']:.1f} |")


def _encoded(kind: ImageFormat, **options):
    def apply(image: Image.Image) -> tuple[np.ndarray, int]:
        if not options:
            data = kind.encode(image)
        else:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, kind.codec, quality=kind.quality, **options)
            data = buffer.getvalue()
        return decode(data), len(data)
    return apply


def _shifted(image: Image.Image) -> tuple[np.ndarray, int]:
    return np.roll(np.asarray(image.convert("RGB")), 1, axis=1), 0


def _dithered(image: Image.Image) -> tuple[np.ndarray, int]:
    pixels = np.asarray(image.convert("RGB")).astype(np.int16)
    noise = np.random.default_rng(0).integers(-1, 2, pixels.shape)
    return np.clip(pixels + noise, 0, 255).astype(np.uint8), 0


# What the judges see. The first two rows measure the judges' own noise: changes
# no one can see (one pixel of shift, +-1 grey level), so a format whose scores
# move no more than these moves them "within noise".
JUDGED = [
    ("PNG (source)", lambda image: (np.asarray(image.convert("RGB")), 0)),
    ("noise: PNG shifted 1 px", _shifted),
    ("noise: PNG +-1 level", _dithered),
    ("WEBP q90", _encoded(ImageFormat("full", "WEBP", 90))),
    ("WEBP q95", _encoded(ImageFormat("full", "WEBP", 95))),
    ("WEBP q100", _encoded(ImageFormat("full", "WEBP", 100))),
    ("WEBP lossless", _encoded(ImageFormat("full", "WEBP", 100), lossless=True, method=4)),
    ("AVIF q80 4:4:4", _encoded(ImageFormat("full", "AVIF", 80), subsampling="4:4:4", speed=6)),
    ("AVIF q90 4:4:4", _encoded(ImageFormat("full", "AVIF", 90), subsampling="4:4:4", speed=6)),
    ("JPEG q95 4:4:4", _encoded(ImageFormat("full", "JPEG", 95), subsampling=0)),
]


def judge_formats(entries, judged=JUDGED) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from judges import logits   # the benchmark's own scoring: full frame resized to the judge's input
    from atlas.model.loading import load_model

    classes = [e for e in entries if e.unit.objective == "logit"]
    targets = torch.tensor([e.unit.index for e in classes])
    judges = [load_model(name) for name in ("efficientnet_lite1", "efficientnet_lite2")]
    print(f"\njudges (Lite1 + Lite2) on {len(classes)} class units: the cached PNG vs what the site would publish")
    print("| image | KB | top-1 | top-5 | mean p | mean abs(p - p_png) | max abs(p - p_png) |\n|---|---|---|---|---|---|---|")
    base = None
    for label, make in judged:
        frames, sizes = [], []
        for e in classes:
            with Image.open(e.image_paths[0]) as image:
                pixels, size = make(image)
            frames.append(pixels)
            sizes.append(size or e.image_paths[0].stat().st_size)
        images = np.stack(frames)
        top1 = top5 = 0.0
        probs = []
        for model in judges:
            scores = logits(model, images, torch.device("cpu")).float()
            ranked = scores.topk(5, dim=1).indices
            top1 += float((ranked[:, 0] == targets).float().mean()) / len(judges)
            top5 += float((ranked == targets[:, None]).any(1).float().mean()) / len(judges)
            probs.append(scores.softmax(1)[torch.arange(len(targets)), targets])
        p = torch.stack(probs)
        base = p if base is None else base
        print(f"| {label} | {np.mean(sizes) / 1e3:.1f} | {top1:.3f} | {top5:.3f} | {float(p.mean()):.3f} | "
              f"{float((p - base).abs().mean()):.3f} | {float((p - base).abs().max()):.3f} |", flush=True)


def site_bytes(cache_dir: Path, out: Path, code: Path | None) -> dict:
    """Write the site with the code at `code` (None: this checkout); bytes by kind."""
    # An older checkout's `atlas.templates` would resolve to this checkout's templates
    # through the editable install: point its site at its own templates folder, wherever
    # its version keeps `template_dir` (atlas.site alone, or atlas.site.templates and write).
    script = ("import importlib, sys; from pathlib import Path; import atlas.site as s\n"
              "own = lambda: Path(sys.argv[3]) / 'templates'\n"
              "for name in ('atlas.site', 'atlas.site.templates', 'atlas.site.write'):\n"
              "    try:\n        m = importlib.import_module(name)\n"
              "    except ImportError:\n        continue\n"
              "    if hasattr(m, 'template_dir'):\n        m.template_dir = own\n"
              "s.write_site(Path(sys.argv[1]), Path(sys.argv[2]))")
    env = {**os.environ, "PYTHONPATH": str(code or Path(__file__).resolve().parents[1])}
    start = time.perf_counter()
    root = code or Path(__file__).resolve().parents[1]
    cache_dir, out = Path(cache_dir).resolve(), Path(out).resolve()
    subprocess.run([sys.executable, "-c", script, str(cache_dir), str(out), str(root)], check=True, env=env,
                   cwd=str(code or Path.cwd()))
    seconds = time.perf_counter() - start
    count = lambda folder: sum(1 for _ in (out / "images" / folder).glob("*")) if (out / "images" / folder).is_dir() else 0  # noqa: E731
    return {**measure(out).__dict__, "seconds": seconds, "n_full": count("full"), "n_thumbs": count("thumb")}


def project(work: Path, codes: dict[str, Path | None], per_image: dict[str, tuple[float, float]]) -> None:
    """A full VGG16 atlas (4,224 channels + 1,000 classes), plain and with --negative:
    pages measured on a synthetic cache of that shape (tests/sitefixture.py), images
    counted there and priced at the bytes per image measured on the real renders."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from sitefixture import make_full_vgg16

    print("\nprojected full VGG16 atlas (5,224 units; pages measured, images at the real bytes per image)")
    print("| code | atlas | pages | full images | thumbnails | total |\n|---|---|---|---|---|---|")
    for negative in (False, True):
        name = "with --negative" if negative else "plain"
        cache_dir = work / f"vgg16{'-negative' if negative else ''}-cache"
        if not (cache_dir / "models").is_dir():
            make_full_vgg16(cache_dir, negative=negative)
        for code, path in codes.items():
            r = site_bytes(cache_dir, work / f"vgg16{'-negative' if negative else ''}-{code}", path)
            full_kb, thumb_kb = per_image[code]
            full, thumbs = r["n_full"] * full_kb * 1e3, r["n_thumbs"] * thumb_kb * 1e3
            pages = r["pages"] + r["other"]
            print(f"| {code} | {name} | {pages / 1e6:.0f} MB ({r['n_full']} images, {r['n_thumbs']} thumbnails) | "
                  f"{full / 1e6:.0f} MB | {thumbs / 1e6:.0f} MB | **{(pages + full + thumbs) / 1e6:.0f} MB** |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, default=Path("bench/out/lite0-224"))
    parser.add_argument("--judges", action="store_true", help="score class units on PNG vs published")
    parser.add_argument("--site", action="store_true", help="write the site and report bytes per unit")
    parser.add_argument("--before", type=Path, help="a checkout of the previous version to compare with")
    parser.add_argument("--work", type=Path, default=Path("bench/out/site-bytes"))
    parser.add_argument("--trials", default="full,thumb", help="which format trials to run: full, thumb, none")
    parser.add_argument("--project", action="store_true", help="with --site: project a full VGG16 atlas")
    args = parser.parse_args()
    torch.set_num_threads(max(1, (os.cpu_count() or 2)))
    entries = [e for e in cache.scan(args.cache) if e.ok]
    sources = [e.image_paths[0] for e in entries]
    classes = sum(e.unit.objective == "logit" for e in entries)
    print(f"{len(entries)} renders in {args.cache} ({classes} class units, {len(entries) - classes} channels), "
          f"{Image.open(sources[0]).size[0]} px; published now: full {FULL.codec} q{FULL.quality}, "
          f"thumbnail {THUMB.codec} q{THUMB.quality} {THUMB.side} px")
    if "full" in args.trials:
        print_table("full image", [trial(kind, sources) for kind in FULL_CANDIDATES])
    if "thumb" in args.trials:
        print_table("thumbnail (against a lossless downscale)", [trial(kind, sources) for kind in THUMB_CANDIDATES])
    if args.judges:
        judge_formats(entries)
    if args.site:
        rows = {"after": site_bytes(args.cache, args.work / "after", None)}
        if args.before:
            rows = {"before": site_bytes(args.cache, args.work / "before", args.before), **rows}
        units = len({(e.meta["model"], e.unit) for e in entries})
        print(f"\nsite of {units} units: bytes per unit")
        print("| code | full | thumbnail | pages | total | site written in |\n|---|---|---|---|---|---|")
        for name, r in rows.items():
            total = r["full"] + r["thumbs"] + r["pages"] + r["other"] + r["examples"]
            print(f"| {name} | {r['full'] / units / 1e3:.1f} KB | {r['thumbs'] / units / 1e3:.1f} KB | "
                  f"{r['pages'] / units / 1e3:.1f} KB | {total / units / 1e3:.1f} KB | {r['seconds']:.1f} s |")
        (args.work / "report.json").write_text(json.dumps({**rows, "units": units}, indent=1))
        if args.project:
            per_image = {name: (r["full"] / r["n_full"] / 1e3, r["thumbs"] / r["n_thumbs"] / 1e3)
                         for name, r in rows.items()}
            for name, (full_kb, thumb_kb) in per_image.items():
                print(f"{name}: {full_kb:.1f} KB per full image, {thumb_kb:.1f} KB per thumbnail")
            project(args.work, {name: (args.before if name == "before" else None) for name in rows}, per_image)


if __name__ == "__main__":
    main()
