"""Caricatures: an image that excites a layer the way a photo does."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from atlas.caricatures import job as caricatures
from atlas.data.photos import as_tensor
from atlas.store import photos as stored_photos
from atlas.pictures.render import render_plan
from atlas.model.classifier import normalize
from atlas.model.forward import activations
from atlas.engine.render import render_batch
from atlas.core.batches import batches
from atlas.plan.work import make_plan
from atlas.core.settings import Settings
from atlas.core.units import Unit

SETTINGS = Settings(size=40, steps=60, precision="fp32", recipe="lucid")


def _photo(size: int = 40) -> np.ndarray:
    """A photo-like layout: a bright disc on the left, dark stripes on the right, a blue sky band."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    pixels = np.zeros((size, size, 3))
    pixels[..., 0] = 0.9 * (((xx - 0.3) ** 2 + (yy - 0.6) ** 2) < 0.04)
    pixels[..., 1] = 0.5 * (xx > 0.6) * (np.sin(yy * 40) > 0)
    pixels[..., 2] = 0.8 * (yy < 0.25)
    return (pixels * 255).astype(np.uint8)


def _correlation(model, image: torch.Tensor, photo: torch.Tensor, layer: str) -> float:
    """How alike the two images' activation maps are laid out: every channel's map
    centred on its own mean (so channel offsets do not count), then correlated."""
    acts = activations(model, normalize(model, torch.stack([image, photo])), {layer})[layer]
    acts = (acts - acts.mean((2, 3), keepdim=True)).flatten(1)
    a, b = acts[0] - acts[0].mean(), acts[1] - acts[1].mean()
    return float((a @ b) / (a.norm() * b.norm()))


def _image(result) -> torch.Tensor:
    return torch.from_numpy(np.array(result.images[0])).permute(2, 0, 1).float() / 255


def test_caricature_rises_and_resembles_the_photo_more_than_a_channel_image(tiny, cpu):
    pixels = _photo()
    key = stored_photos.digest(pixels)
    photo = as_tensor(pixels)
    layer = "features.2"
    (unit,) = caricatures.caricature_units([layer], key)
    (result,) = render_batch(tiny, [unit], SETTINGS, cpu, photos={key: photo})
    assert not result.error
    assert np.mean(result.curve[-5:]) > np.mean(result.curve[:5]) + 0.1 * abs(np.mean(result.curve[:5]))
    (channel,) = render_batch(tiny, [Unit(layer, 3)], SETTINGS, cpu)
    mine, theirs = (_correlation(tiny, _image(r), photo, layer) for r in (result, channel))
    assert mine > theirs + 0.15 and mine > 0.25


def test_all_layers_of_one_photo_render_as_one_batch(tiny, cpu, tmp_path):
    first, second = _photo(), _photo()[:, ::-1].copy()
    layers = ["features.0", "features.2", "features.5"]
    units = [u for p in (first, second) for u in caricatures.caricature_units(layers, stored_photos.digest(p))]
    assert [len(b) for b in batches(units, 64)] == [3, 3]
    photos = {stored_photos.digest(p): as_tensor(p) for p in (first, second)}
    settings = SETTINGS.replace(steps=3)
    plan = make_plan(tiny, units, settings, tmp_path)
    summary = render_plan(tiny, plan, settings, dataclasses.replace(cpu, batch_size=3), root=tmp_path, photos=photos)
    assert summary.rendered == 6 and not summary.failed


def test_render_caricatures_stores_the_photos_and_caches(tiny, cpu, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    from PIL import Image
    Image.fromarray(_photo(64)).save(folder / "a.png")
    Image.fromarray(_photo(64)[::-1].copy()).save(folder / "b.jpg")
    settings = SETTINGS.replace(steps=2, recipe="views")
    request = caricatures.CaricaturesRequest(folder, photos=2)
    summary = caricatures.render_caricatures(tiny, ["features.0", "features.5"], request, settings=settings,
                                             runtime=cpu, root=tmp_path / "cache")
    assert summary.rendered == 4
    stored = stored_photos.scan(tmp_path / "cache")
    assert sorted(r["name"] for r in stored.values()) == ["a.png", "b.jpg"]
    again = caricatures.render_caricatures(tiny, ["features.0", "features.5"], request, settings=settings,
                                           runtime=cpu, root=tmp_path / "cache")
    assert again.rendered == 0 and again.cached == 4
