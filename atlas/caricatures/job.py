"""The caricature step of a build: what each rendered layer makes of a few real photos.

For every photo and every rendered layer with a spatial map, one unit whose
objective (`atlas.optvis.caricature`) excites the layer the way the photo does.
Lucid's recipe fixes the views: its small transforms (pad, jitter, scale, rotate)
keep the image aligned with the photo's layout, where random crops would not.
Every layer of one photo renders in one batch: one forward pass to the deepest
layer serves them all (the kind batches across layers, `atlas.kinds`). Photos are
framed as the model's evaluation frames them at the render size and stored
beside the cache for the site (`atlas.store.photos`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..data import photos as photo_files
from ..plan import work as plans
from ..pictures.render import Summary, render_plan
from ..core.errors import AtlasError
from ..core.kinds import Page, kind
from ..model.classifier import Model
from ..model.runtime import Runtime
from ..engine.caricatures import DEFAULT_POWER
from ..core.settings import Settings
from ..store import photos as stored_photos
from ..core.units import Unit

DEFAULT_PHOTOS = 3
RECIPE = "lucid"


def choose_photos(folder: Path, count: int, option: str = "--caricatures") -> list[Path]:
    """The first `count` readable images of `folder` (sorted by path); unreadable ones
    are skipped with a warning. `option` names where the folder came from, for errors."""
    if count < 1:
        raise AtlasError(f"--caricature-photos must be at least 1, got {count}")
    chosen, _ = photo_files.readable(photo_files.list_images(Path(folder), option), count)
    if not chosen:
        raise AtlasError(f"{option} {folder}: none of its images can be read")
    return chosen


def caricature_units(layers: list[str], photo: str, power: float = DEFAULT_POWER) -> list[Unit]:
    """One unit per layer for one photo (the index is unused: the whole layer imitates the photo)."""
    return [Unit(layer, 0, "caricature", params={"photo": photo, "power": float(power)}) for layer in layers]


def caricature_layers(model: Model, units: list[Unit]) -> list[str]:
    """The rendered layers a caricature applies to: those with channel units and a spatial map."""
    names = {u.layer for u in units if u.kind.page == Page.UNIT and not u.kind.is_class}
    return sorted((n for n in names if model.layer(n).layout.kind in kind("caricature").layouts),
                  key=lambda n: model.layer(n).position)


@dataclass(frozen=True)
class CaricaturesRequest:
    """What a build asks of caricatures: the first `photos` readable photos of `folder`."""
    folder: Path
    photos: int = DEFAULT_PHOTOS
    steps: int | None = None          # None: the build's steps
    option: str = "--caricatures"     # the option that named the folder, for messages
    power: float = DEFAULT_POWER


def check(request: CaricaturesRequest) -> list[Path]:
    """The photos a request will imitate: a bad folder fails now, before any rendering."""
    return choose_photos(request.folder, request.photos, request.option)


def render_caricatures(model: Model, layers: list[str], request: CaricaturesRequest, *, settings: Settings,
                       runtime: Runtime, root: Path, on_batch=lambda n: None) -> Summary:
    """Caricatures of the request's photos at every layer in `layers`, cached like every
    render. Settings are the build's with Lucid's views (and the request's steps)."""
    chosen = settings.replace(recipe=RECIPE, **({"steps": request.steps} if request.steps else {}))
    images, units = {}, []
    for path in check(request):
        pixels = photo_files.model_view(path, chosen.size)
        key = stored_photos.store(root, pixels, path.relative_to(request.folder).as_posix())
        images[key] = photo_files.as_tensor(pixels)
        units += caricature_units(layers, key, request.power)
    plan = plans.make_plan(model, units, chosen, root)
    # All layers of one photo in one batch: the batch key keeps photos apart.
    return render_plan(model, plan, chosen, replace(runtime, batch_size=max(1, len(layers))), root=root,
                       on_batch=on_batch, photos=images)
