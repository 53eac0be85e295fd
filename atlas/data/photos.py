"""Real photos in: finding them in a folder, decoding them safely, framing them as the model's evaluation does.

Every pass that reads a folder (dataset examples, caricatures, dissection, the
activation atlas) goes through here, so they list the same files, skip the same
unreadable ones with the same one-line reason, and frame a photo the same way.
Torch is imported only by `as_tensor`.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import AtlasError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


class UnreadableImage(AtlasError):
    """A file with an image suffix that does not decode (truncated, not an image, too large)."""


class SkippedImageWarning(UserWarning):
    """A pass skipped an image it could not read; the pass goes on without it."""


def list_images(folder: Path, option: str = "--examples") -> list[Path]:
    """Every image under `folder` (an ImageFolder tree or a flat folder), sorted.
    `option` names the command-line option the folder came from, for the error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AtlasError(f"{option} {folder} is not a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise AtlasError(f"{option} {folder}: no images (jpg, png, webp, bmp) in it")
    return paths


def open_rgb(path: Path) -> Image.Image:
    """The whole image decoded as 8-bit RGB (CMYK, palette and grey converted), or
    UnreadableImage with the reason on one line."""
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        reason = (str(err).splitlines() or [type(err).__name__])[0][:160]
        raise UnreadableImage(f"cannot read image {path}: {reason}") from None


def frame(image: Image.Image, size: int, resize: int | None = None,
          resample: Image.Resampling = Image.Resampling.BICUBIC) -> Image.Image:
    """The evaluation framing: the shorter side resampled to `resize` (default `size`),
    then the centre `size` square. Label maps take it with NEAREST, so labels never blend."""
    resize = resize or size
    scale = resize / min(image.size)
    image = image.resize((max(resize, round(image.width * scale)), max(resize, round(image.height * scale))),
                         resample)
    left, top = (image.width - size) // 2, (image.height - size) // 2
    return image.crop((left, top, left + size, top + size))


def eval_view(image: Image.Image, size: int, resize: int | None = None) -> np.ndarray:
    """`frame` of a photo as uint8 HxWx3."""
    return np.asarray(frame(image, size, resize), dtype=np.uint8)


def model_view(path: Path, size: int, resize: int | None = None) -> np.ndarray:
    """`eval_view` of the photo at `path`; UnreadableImage when it does not decode."""
    return eval_view(open_rgb(path), size, resize)


def readable(paths: list[Path], count: int | None = None) -> tuple[list[Path], list[str]]:
    """The first `count` (default all) paths that decode, and one reason per skipped file;
    each skipped file warns (SkippedImageWarning)."""
    chosen, skipped = [], []
    for path in paths:
        if count is not None and len(chosen) >= count:
            break
        try:
            open_rgb(path)
        except UnreadableImage as err:
            skipped.append(str(err))
            warnings.warn(f"{err}; skipped", SkippedImageWarning, stacklevel=2)
            continue
        chosen.append(path)
    return chosen, skipped


def as_tensor(pixels: np.ndarray):
    """uint8 HxWx3 (or a batch NxHxWx3) -> float tensor [3, H, W] (or [N, 3, H, W]) in [0, 1]."""
    import torch

    tensor = torch.from_numpy(np.array(pixels, dtype=np.uint8))
    return tensor.movedim(-1, -3).float() / 255
