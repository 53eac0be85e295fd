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

import io
import time
from pathlib import Path

import joblib
import torch
from PIL import Image

from . import photos
from .models import Model, normalize
from .optvis.hooks import activations
from .store import examples as stored
from .store.examples import Example, LayerExamples

MIN_CROP = 32    # px: the smallest receptive field still worth looking at
CROP_SIDE = 112  # px of the stored crops (JPEG)


def dataset_fingerprint(folder: Path, paths: list[Path]) -> str:
    stats = [(str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in paths]
    return joblib.hash(stats)


def view_side(model: Model) -> tuple[int, int]:
    """(crop, resize): the side natural images are shown to the model at, and the
    shorter side they are first resampled to, in the ratio of the model's own evaluation."""
    size = model.input_size
    return size, round(size * model.spec.resize_size / model.spec.crop_size)


def preprocess(path: Path, model: Model) -> torch.Tensor | None:
    """The model's evaluation view of the image at `path`, [3, S, S] in [0, 1]; None when unreadable."""
    try:
        return photos.as_tensor(photos.model_view(path, *view_side(model)))
    except photos.UnreadableImage:
        return None


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
    paths = photos.list_images(folder)
    size = model.input_size
    dataset = dataset_fingerprint(folder, paths)
    keys = {layer: stored.examples_key(model.name, model.fingerprint, layer, dataset, k, size) for layer in layers}
    results = {layer: stored.load(root, key) for layer, key in keys.items()}
    missing = [layer for layer, result in results.items() if result is None]
    if not missing:
        return results, 0.0

    best = {layer: None for layer in missing}  # (values [C,k], image ids [C,k], positions [C,k,2])
    grids: dict[str, tuple[int, int]] = {}
    start = time.perf_counter()
    seen = 0
    for first in range(0, len(paths), batch_size):
        loaded = [(i, preprocess(p, model)) for i, p in enumerate(paths[first:first + batch_size], first)]
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
                    views[image_id] = preprocess(paths[image_id], model)
                view = views[image_id]
                crop = (view[:, box[1]:box[3], box[0]:box[2]] * 255).round().to(torch.uint8)
                crops[(image_id, box)] = stored.store_crop(root, _jpeg(crop))
            examples.append(Example(str(paths[image_id].relative_to(folder)), float(values[channel, rank]),
                                    box, crops[(image_id, box)]))
        channels.append(examples)
    return stored.store(root, key, LayerExamples(
        model.name, model.fingerprint, layer, str(folder), dataset, len(paths), int(values.shape[1]), size, side,
        channels))


def _box(position, grid, side, size) -> tuple[int, int, int, int]:
    """A `side`-pixel square around the input point under grid cell `position`, inside the image."""
    if grid is None:
        return 0, 0, size, size
    cy = (position[0] + 0.5) * size / grid[0]
    cx = (position[1] + 0.5) * size / grid[1]
    left = int(min(max(cx - side / 2, 0), size - side))
    top = int(min(max(cy - side / 2, 0), size - side))
    return left, top, left + side, top + side


def _jpeg(crop: torch.Tensor) -> bytes:
    image = Image.fromarray(crop.permute(1, 2, 0).numpy()).resize((CROP_SIDE, CROP_SIDE), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()
