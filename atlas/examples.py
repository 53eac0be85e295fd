"""Dataset examples: the natural images that excite each unit most.

One streaming pass over a folder of images keeps, for every channel of the
chosen layers, the top-k images by the same objective the visualization
maximizes (a channel's mean activation, a class logit), with the position of
the channel's strongest response and a crop of its receptive field there.
Memory stays bounded: a running top-k per layer, never all activations.

Results are cached per layer under `<cache>/examples/`, keyed by the dataset
(file names, sizes, mtimes), the model and its weights, and the settings:
adding an image invalidates them, running again does not recompute. Crops are
stored once each under `<cache>/examples/crops/`, named by their content: many
channels (and layers) share the same image and box, and store it only once.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import joblib
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms.v2 import functional as TF

from . import cache
from .errors import AtlasError
from .models import Model, normalize
from .optvis.hooks import activations

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
EXAMPLES_VERSION = 1
CROP_SIDE = 112  # px of the stored crops (JPEG)
MIN_CROP = 32  # px: the smallest receptive field still worth looking at
CROPS_DIR = "crops"  # <cache>/examples/crops/<sha256>.jpg, shared by every layer's results


@dataclass(frozen=True)
class Example:
    file: str  # relative to the dataset folder
    value: float  # the unit's objective on the image
    box: tuple[int, int, int, int]  # crop (left, top, right, bottom) in model-input pixels
    crop: str  # stored crop, relative to the cache's examples folder


def list_images(folder: Path) -> list[Path]:
    """Every image under `folder` (an ImageFolder tree or a flat folder), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AtlasError(f"--examples {folder} is not a folder of images")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not paths:
        raise AtlasError(f"no images (jpg, png, webp, bmp) under {folder}")
    return paths


def dataset_fingerprint(folder: Path, paths: list[Path]) -> str:
    stats = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    return joblib.hash(stats)


def examples_key(model: Model, layer: str, dataset: str, k: int, size: int) -> str:
    return joblib.hash({"model": model.name, "weights": model.fingerprint, "layer": layer,
                        "dataset": dataset, "k": k, "size": size, "version": EXAMPLES_VERSION})


def _path(root: Path, key: str) -> Path:
    return Path(root) / "examples" / f"{key}.json"


def load_layer(root: Path, key: str) -> dict | None:
    try:
        return json.loads(_path(root, key).read_bytes())
    except FileNotFoundError:
        return None
    except ValueError:
        return None  # a torn or corrupt file: compute again


def preprocess(path: Path, size: int) -> torch.Tensor | None:
    """ImageNet evaluation view: shorter side to size/0.875, centre crop of size; [0, 1]."""
    try:
        with Image.open(path) as image:
            tensor = TF.pil_to_tensor(image.convert("RGB"))
    except (OSError, UnidentifiedImageError):
        return None
    tensor = TF.resize(tensor, int(size / 0.875), antialias=True)
    return TF.center_crop(tensor, size).float() / 255


def receptive_field(model: Model, layer: str, size: int, device: torch.device) -> int:
    """Side in pixels of the input region that reaches the centre unit of `layer`.

    Measured, not derived: backpropagate from the centre position and see how
    far a non-zero gradient spreads (architectures differ too much to tabulate).
    """
    x = torch.rand(1, 3, size, size, device=device, requires_grad=True)
    out = activations(model, normalize(model, x), {layer})[layer]
    if out.dim() != 4:
        return size
    out[0, :, out.shape[2] // 2, out.shape[3] // 2].sum().backward()
    reached = x.grad.abs().sum(1)[0] > 0
    rows, cols = reached.any(1).nonzero(), reached.any(0).nonzero()
    if len(rows) == 0:
        return size
    return int(max(rows.max() - rows.min() + 1, cols.max() - cols.min() + 1, MIN_CROP))


def find_examples(model: Model, layers: list[str], folder: Path, root: Path, device: torch.device,
                  k: int = 9, batch_size: int = 32, on_batch=lambda n: None) -> tuple[dict[str, dict], float]:
    """Top-k examples for every channel of `layers`, from the cache or one streaming pass.

    Returns ({layer: stored result}, images per second of the pass; 0 if all cached).
    """
    folder = Path(folder)
    paths = list_images(folder)
    size = model.input_size
    dataset = dataset_fingerprint(folder, paths)
    keys = {layer: examples_key(model, layer, dataset, k, size) for layer in layers}
    results = {layer: load_layer(root, key) for layer, key in keys.items()}
    missing = [layer for layer, result in results.items() if result is None]
    if not missing:
        return results, 0.0

    best = {layer: None for layer in missing}  # (values [C,k], image ids [C,k], positions [C,k,2])
    grids: dict[str, tuple[int, int]] = {}
    start = time.perf_counter()
    seen = 0
    for first in range(0, len(paths), batch_size):
        loaded = [(i, preprocess(p, size)) for i, p in enumerate(paths[first:first + batch_size], first)]
        loaded = [(i, t) for i, t in loaded if t is not None]
        if not loaded:
            continue
        ids = torch.tensor([i for i, _ in loaded], device=device)
        x = torch.stack([t for _, t in loaded]).to(device)
        x = normalize(model, x)
        with torch.no_grad():
            acts = activations(model, x.contiguous(memory_format=torch.channels_last), set(missing))
        for layer in missing:
            out = acts[layer].float()
            if out.dim() == 4:
                grids[layer] = out.shape[2:]
                flat = out.flatten(2)
                values, where = flat.mean(2), flat.argmax(2)
                positions = torch.stack([where // out.shape[3], where % out.shape[3]], -1)
            else:
                values, positions = out, torch.zeros(*out.shape, 2, dtype=torch.long, device=device)
            best[layer] = _merge_top(best[layer], values.T, ids.expand(values.shape[1], -1),
                                     positions.transpose(0, 1), k)
        seen += len(loaded)
        on_batch(len(loaded))
    rate = seen / max(time.perf_counter() - start, 1e-9)

    for layer in missing:
        results[layer] = _store_layer(model, layer, keys[layer], best[layer], grids.get(layer), paths,
                                      folder, root, size, device, dataset)
    return results, rate


def _merge_top(current, values, ids, positions, k):
    """Running top-k along dim 1 of per-channel candidates."""
    if current is not None:
        values = torch.cat([current[0], values], 1)
        ids = torch.cat([current[1], ids], 1)
        positions = torch.cat([current[2], positions], 1)
    top = values.topk(min(k, values.shape[1]), dim=1)
    pick = top.indices
    return top.values, ids.gather(1, pick), positions.gather(1, pick[..., None].expand(-1, -1, 2))


def _store_layer(model, layer, key, best, grid, paths, folder, root, size, device, dataset) -> dict:
    values, ids, positions = (t.cpu() for t in best)
    side = receptive_field(model, layer, size, device) if grid else size
    views: dict[int, torch.Tensor] = {}  # channels share their top images: decode each once
    crops: dict[tuple, str] = {}  # (image, box) -> stored crop: channels share crops too
    channels = []
    for channel in range(values.shape[0]):
        examples = []
        for rank in range(values.shape[1]):
            image_id = int(ids[channel, rank])
            box = _box(positions[channel, rank].tolist(), grid, side, size)
            if (image_id, box) not in crops:
                if image_id not in views:
                    views[image_id] = preprocess(paths[image_id], size)
                view = views[image_id]
                crop = (view[:, box[1]:box[3], box[0]:box[2]] * 255).round().to(torch.uint8)
                crops[(image_id, box)] = _store_crop(root, _jpeg(crop))
            examples.append(Example(str(paths[image_id].relative_to(folder)), float(values[channel, rank]),
                                    box, crops[(image_id, box)]).__dict__)
        channels.append(examples)
    result = {"model": model.name, "fingerprint": model.fingerprint, "layer": layer, "dataset": str(folder),
              "dataset_fingerprint": dataset, "images": len(paths), "k": values.shape[1], "size": size,
              "receptive_field": side, "channels": channels}
    data = json.dumps(result).encode()
    cache.atomic_write(_path(root, key), data)
    return json.loads(data)  # the same plain lists a later cached read gives


def _box(position, grid, side, size) -> tuple[int, int, int, int]:
    """A `side`-pixel square around the input point under grid cell `position`, inside the image."""
    if grid is None:
        return 0, 0, size, size
    cy = (position[0] + 0.5) * size / grid[0]
    cx = (position[1] + 0.5) * size / grid[1]
    left = int(min(max(cx - side / 2, 0), size - side))
    top = int(min(max(cy - side / 2, 0), size - side))
    return left, top, left + side, top + side


def _store_crop(root: Path, data: bytes) -> str:
    """Store a crop once, named by its content (relative to the examples folder): the
    same image and box recur across channels, layers and runs, and a name that is its
    content's hash is already right wherever it exists."""
    name = f"{CROPS_DIR}/{hashlib.sha256(data).hexdigest()[:24]}.jpg"
    path = Path(root) / "examples" / name
    if not path.exists():
        cache.atomic_write(path, data)
    return name


def _jpeg(crop: torch.Tensor) -> bytes:
    image = TF.to_pil_image(crop).resize((CROP_SIDE, CROP_SIDE), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()


class UnreadableExamplesWarning(UserWarning):
    """A stored examples file could not be read; the site leaves it out."""


def scan_examples(root: Path) -> dict[tuple[str, str, str], dict]:
    """The newest stored examples result per (model, fingerprint, layer) in the cache.

    Each value is the stored result as `find_examples` wrote it, plus ``"key"`` (the
    file's stem, which names its crops' folder). "Newest" is the file written last:
    a layer redone with other images or another k replaces the old result on the
    site, which the old one's different key leaves in the cache. Files that cannot
    be read, or are not shaped like a result, warn and are skipped.
    """
    newest: dict[tuple[str, str, str], tuple[tuple[int, str], dict]] = {}
    for path in sorted((Path(root) / "examples").glob("*.json")):
        try:
            when = path.stat().st_mtime_ns
            result = json.loads(path.read_bytes())
            if not isinstance(result, dict):
                raise ValueError("not a JSON object")
            ident = tuple(result[name] for name in ("model", "fingerprint", "layer"))
            if not all(isinstance(part, str) for part in ident):
                raise ValueError("model, fingerprint and layer must be strings")
            channels = result["channels"]
            if not isinstance(channels, list) or not all(isinstance(c, list) for c in channels):
                raise ValueError("channels is not a list of lists")
        except FileNotFoundError:
            continue  # replaced or removed while we looked
        except (OSError, ValueError, KeyError, TypeError) as err:
            warnings.warn(f"unreadable dataset examples {path.name} ({err or type(err).__name__}); skipped",
                          UnreadableExamplesWarning, stacklevel=2)
            continue
        order = (when, path.stem)
        if ident not in newest or order > newest[ident][0]:
            newest[ident] = (order, {**result, "key": path.stem})
    return {ident: result for ident, (_, result) in newest.items()}
