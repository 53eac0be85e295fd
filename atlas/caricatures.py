"""Caricatures: what each layer makes of a real photo (Microscope's "caricature").

For a photo and a layer, an image optimized to excite the layer the way the
photo does: the objective is the dot product of the image's activations with
the photo's times their cosine similarity to a power (Lucid's `dot_compare`,
the similarity clamped at 0.1). Lucid's recipe uses power 0, the dot product
alone; we use 1, which kept the layout of the photo better (spatial correlation
of a TinyVGG layer's maps with the photo's: 0.41 against 0.32 at power 0; a
channel image: 0.08), so the image exaggerates what the layer sees in the photo
without drifting from where it sees it. Lucid's recipe also fixes the views: the small `lucid` transforms
(pad, jitter, scale, rotate) keep the image aligned with the photo's layout,
where random crops would not.

Every layer of one photo renders in one batch: one forward pass to the deepest
layer serves them all (the objective kind batches across layers, kinds.py).
A unit names its photo by the digest of its pixels, so the cache key follows
the photo's content, not its file name. Photos are stored under
`<cache>/photos/<digest>.png` with a small record the site reads.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import cache
from .errors import AtlasError
from .units import Unit

DEFAULT_PHOTOS = 3
DEFAULT_POWER = 1.0   # cosine similarity's power (Lucid's recipe: 0, the dot product alone)
RECIPE = "lucid"
FOLDER = "photos"
MIN_COSINE = 0.1      # Lucid clamps the similarity so a power never flips the sign or vanishes


def list_photos(folder: Path, count: int) -> list[Path]:
    """The first `count` images of `folder` (sorted by path)."""
    from .examples import list_images

    if count < 1:
        raise AtlasError(f"--caricature-photos must be at least 1, got {count}")
    return list_images(Path(folder))[:count]


def load_photo(path: Path, size: int) -> np.ndarray:
    """The photo as the model's evaluation would frame it: shorter side to `size`, centre square; uint8 HxWx3."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            scale = size / min(image.size)
            image = image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                                 Image.Resampling.BICUBIC)
            left, top = (image.width - size) // 2, (image.height - size) // 2
            return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except OSError as err:
        raise AtlasError(f"cannot read photo {path}: {err}") from None


def digest(pixels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()[:16]


def as_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(pixels, dtype=np.uint8)).permute(2, 0, 1).float() / 255


def store_photo(root: Path, pixels: np.ndarray, name: str) -> str:
    """Keep the photo beside the cache for the site; return its digest."""
    key = digest(pixels)
    folder = Path(root) / FOLDER
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    cache.atomic_write(folder / f"{key}.png", buffer.getvalue())
    record = {"digest": key, "name": name, "size": int(pixels.shape[0]), "file": f"{key}.png"}
    cache.atomic_write(folder / f"{key}.json", json.dumps(record).encode())
    return key


def scan_photos(root: Path) -> dict[str, dict]:
    """digest -> stored record (with `path`), for every photo in the cache."""
    found = {}
    for path in sorted((Path(root) / FOLDER).glob("*.json")):
        try:
            record = json.loads(path.read_bytes())
            image = path.with_name(str(record["file"]))
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if image.is_file() and image.parent == path.parent:
            found[str(record["digest"])] = {**record, "path": image}
    return found


def caricature_units(layers: list[str], photo: str, power: float = DEFAULT_POWER) -> list[Unit]:
    """One unit per layer for one photo (the index is unused: the whole layer imitates the photo)."""
    return [Unit(layer, 0, "caricature", params={"photo": photo, "power": float(power)}) for layer in layers]


def caricature_objective(rows: list[Unit], ctx):
    """The registry's builder: each row's score is its layer's activations dotted with the
    photo's (resampled to the row's map size), times their cosine similarity to a power."""
    from .optvis.objectives import Objective

    layers = sorted({u.layer for u in rows})
    groups = {layer: torch.tensor([i for i, u in enumerate(rows) if u.layer == layer]) for layer in layers}
    targets = _targets(rows, ctx)
    photos = {layer: [u.param("photo") for u in rows if u.layer == layer] for layer in layers}
    powers = torch.tensor([float(u.param("power")) for u in rows])

    def score(acts):
        first = acts[layers[0]]
        total = torch.zeros(len(rows), device=first.device)
        for layer in layers:
            index = groups[layer].to(first.device)
            mine = acts[layer][index].float()
            target = torch.stack([_resized(targets[(p, layer)], mine.shape[2:], ctx.memo) for p in photos[layer]])
            dot = (mine * target).flatten(1).sum(1)
            cosine = dot / (mine.flatten(1).norm(dim=1) * target.flatten(1).norm(dim=1) + 1e-6)
            power = powers[groups[layer]].to(first.device)
            total = total.index_put((index,), dot * cosine.clamp(min=MIN_COSINE) ** power)
        return total

    return Objective(score, frozenset(layers))


def _targets(rows: list[Unit], ctx) -> dict[tuple[str, str], torch.Tensor]:
    """The photo's activations at every layer a row needs, computed once per batch."""
    from . import device as devices
    from .models import normalize
    from .optvis.hooks import activations

    wanted = {(u.param("photo"), u.layer) for u in rows}
    missing = {photo for photo, layer in wanted if ("target", photo, layer) not in ctx.memo}
    for photo in sorted(missing):
        if photo not in ctx.photos:
            raise AtlasError(f"caricature of photo {photo}: the photo was not given to the render")
        image = ctx.photos[photo].to(ctx.device)[None]
        layers = {layer for p, layer in wanted if p == photo}
        with torch.no_grad(), devices.autocast(ctx.device, ctx.precision):
            acts = activations(ctx.model, normalize(ctx.model, image), layers)
        for layer in layers:
            ctx.memo[("target", photo, layer)] = acts[layer][0].float().detach()
    return {(p, layer): ctx.memo[("target", p, layer)] for p, layer in wanted}


def _resized(target: torch.Tensor, shape, memo: dict) -> torch.Tensor:
    """The photo's map at the size of the image's view (the views are a little larger
    than the photo: padded and jittered), computed once per size."""
    if target.dim() == 1 or tuple(target.shape[1:]) == tuple(shape):
        return target
    key = ("resized", id(target), tuple(shape))
    if key not in memo:
        memo[key] = F.interpolate(target[None], size=tuple(shape), mode="bilinear", align_corners=False)[0]
    return memo[key]


def render_caricatures(model, layers: list[str], folder: Path, count: int, settings, root: Path, device,
                       power: float = DEFAULT_POWER, on_batch=lambda n: None):
    """Caricatures of the first `count` photos of `folder` at every layer in `layers`, cached
    like every render; returns render_plan's Summary. Settings are the build's with Lucid's views."""
    from . import plan as plans
    from .build import render_plan

    chosen = settings.replace(recipe=RECIPE)
    photos, units = {}, []
    for path in list_photos(folder, count):
        pixels = load_photo(path, chosen.size)
        key = store_photo(root, pixels, path.relative_to(folder).as_posix())
        photos[key] = as_tensor(pixels)
        units += caricature_units(layers, key, power)
    plan = plans.make_plan(model, units, chosen, root)
    # All layers of one photo in one batch: the batch key keeps photos apart.
    return render_plan(model, plan, chosen, root, device, batch_size=max(1, len(layers)), on_batch=on_batch,
                       photos=photos)


def caricature_layers(model, units) -> list[str]:
    """The rendered layers a caricature applies to: those with channel units and a spatial map."""
    from .kinds import kind

    names = {u.layer for u in units if u.kind.page == "unit" and not u.kind.is_class}
    return sorted((n for n in names if model.layer(n).layout.kind in kind("caricature").layouts),
                  key=lambda n: model.layer(n).position)
