"""Publishing images: the lossless cache PNGs in, the web formats the site serves out.

The cache keeps every render as a lossless PNG, the source of truth; the site
serves each in a format measured to keep the look at a fraction of the bytes
(`bench/site_bytes.py`; the numbers are in BENCHMARKS.md, "Site bytes"):

- full images: AVIF, quality 80, full colour resolution (118 KB as PNG, 23 KB as AVIF);
- thumbnails: WebP, quality 80, 160 px for grid cells of about 120 CSS px;
- dataset-example crops: the cache's JPEGs as they are, named by content.

Every published name carries the source image's sha256 and the format's tag, so
a file already in the site is the right one and is skipped, and changing a
format's settings publishes new names (the old files are then stale and removed).
"""

from __future__ import annotations

import functools
import io
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from ..store.files import replace_file

if TYPE_CHECKING:
    from .views import ModelView

EXAMPLE_DIR = "images/examples"


@dataclass(frozen=True)
class ImageFormat:
    """How one kind of site image is encoded, and where it goes."""
    folder: str                  # under the site's images/
    codec: str                   # Pillow's name: "WEBP", "AVIF", "JPEG", "PNG"
    quality: int
    side: int | None = None      # largest side in px (downscaled, never up); None: as rendered
    effort: int = 4              # WebP "method" 0-6, AVIF speed 10 - effort: more is smaller and slower
    chroma: str = "4:2:0"        # colour resolution (AVIF, JPEG); "4:4:4" keeps it whole

    @property
    def ext(self) -> str:
        return {"JPEG": "jpg"}.get(self.codec, self.codec.lower())

    @property
    def tag(self) -> str:
        """The settings in a few characters, part of every published name."""
        size = f"s{self.side}" if self.side else ""
        chroma = "c" + self.chroma.replace(":", "") if self.codec in ("AVIF", "JPEG") else ""
        return f"{self.codec[0].lower()}{size}q{self.quality}{chroma}"

    def site_path(self, stem: str, digest: str) -> str:
        return f"images/{self.folder}/{stem}-{digest[:16]}-{self.tag}.{self.ext}"

    def encode(self, image: Image.Image) -> bytes:
        image = image.convert("RGB")
        if self.side and max(image.size) > self.side:
            image = image.copy()
            image.thumbnail((self.side, self.side), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        if self.codec == "WEBP":
            image.save(buffer, "WEBP", quality=self.quality, method=self.effort)
        elif self.codec == "AVIF":
            image.save(buffer, "AVIF", quality=self.quality, speed=max(0, 10 - self.effort),
                       subsampling=self.chroma)
        elif self.codec == "JPEG":
            image.save(buffer, "JPEG", quality=self.quality, optimize=True,
                       subsampling={"4:4:4": 0, "4:2:2": 1}.get(self.chroma, 2))
        else:
            image.save(buffer, self.codec, optimize=True)
        return buffer.getvalue()


# Full images: shown at up to 448 CSS px on a unit page (rendered at 224). AVIF with
# full colour resolution: at 23 KB a 224 px render (PNG: 118 KB) scores the same with
# the benchmark judges as its PNG, within their noise. WebP is as small at the same
# SSIM but always halves colour resolution, which moved the judges (top-1 0.985 ->
# 0.956 even at quality 100): feature visualizations carry class evidence in fine
# colour detail. AVIF is slower to encode (about 0.1 s an image), once per image.
FULL = ImageFormat("full", "AVIF", quality=80, chroma="4:4:4")
# Grid cells are about 120 CSS px wide (style.css: .grid, .classes; .ref-grid ~150):
# 160 px keeps them sharp at 1.3x density for a third of the bytes of 2x (8 vs 12 KB).
THUMB = ImageFormat("thumb", "WEBP", quality=80, side=160)


def publish_images(models: list["ModelView"], out: Path) -> set[Path]:
    """Put every image the pages reference into the site; return their paths.

    A file already there is the right one (its name says what it is made of and
    how) and is skipped: a rewrite only adds what is new.
    """
    jobs = {}
    for model in models:
        for render in model.renders:
            for name, source in zip(render.images, render.sources):
                jobs[out / name] = functools.partial(_convert, source, FULL)
            if render.thumb:
                jobs[out / render.thumb] = functools.partial(_convert, render.sources[0], THUMB)
        for photo in model.photos:
            jobs[out / photo.image] = functools.partial(_convert, photo.source, FULL)
        for layer in model.layers:
            for shown in layer.examples.channels if layer.examples else []:
                for example in shown:
                    jobs[out / example.image] = functools.partial(_link_or_copy, example.source)
            for atlas in layer.atlases:
                for site_path, source in atlas.patches.items():
                    jobs[out / site_path] = functools.partial(_link_or_copy, source)
            if layer.dictionary is not None:
                for site_path, source in layer.dictionary.crops.items():
                    jobs[out / site_path] = functools.partial(_link_or_copy, source)
    todo = [(target, job) for target, job in jobs.items() if not target.exists()]
    for folder in {target.parent for target, _ in todo}:
        folder.mkdir(parents=True, exist_ok=True)
    # Pillow releases the GIL while decoding and encoding, so threads do use the cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda item: item[1](item[0]), todo))
    return set(jobs)


def _convert(source: Path, kind: ImageFormat, target: Path) -> None:
    with Image.open(source) as image:
        data = kind.encode(image)
    # Renamed into place whole: a killed build never leaves half an image that later runs skip.
    replace_file(target, data, fsync=False)


def _link_or_copy(source: Path, target: Path) -> None:
    # Cache files are never rewritten in place, so a hard link is safe, costs no
    # disk, and appears whole at once. Across file systems, copy then rename.
    try:
        os.link(source, target)
        return
    except FileExistsError:
        return
    except OSError:
        pass
    replace_file(target, Path(source).read_bytes(), fsync=False)
