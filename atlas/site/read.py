"""Cache entries in, view records out: group renders under their model, newest first.

Reads each entry's metadata through `atlas.record.EntryMeta`, the record the
build writes, and attaches stored dataset examples to their layers.
"""

from __future__ import annotations

import hashlib
import posixpath
import warnings
from pathlib import Path

from ..store import cache
from ..core.errors import AtlasError
from ..core.kinds import Page
from ..core.entry import EntryMeta, number
from ..core.text import safe_name
from ..core.units import OBJECTIVES
from .activation_atlas import attach as attach_atlases
from .dictionary import attach as attach_dictionaries
from .dissection import attach as attach_concepts
from .circuits import attach as attach_connections
from .figures import curve_plot
from .publish import FULL, THUMB, EXAMPLE_DIR
from .renders import ExampleSet, ExampleView, Render
from .views import LayerView, ModelView, PhotoView, UnitView


def model_views(entries, cards: list[dict], *, examples: dict | None = None,
                examples_dir: Path | None = None, photos: dict | None = None,
                pairs: dict | None = None, dissections: dict | None = None, atlases: dict | None = None,
                atlas_root: Path | None = None, dictionaries: dict | None = None,
                dictionary_root: Path | None = None) -> list[ModelView]:
    """Group cache entries under their model card, newest render per unit, pages linked up.

    `examples` maps (model, fingerprint, layer) to a stored dataset-examples result
    (`atlas.store.examples.scan`), whose crops lie under `examples_dir`. `photos`
    maps a photo digest to its stored record (`atlas.store.photos.scan`);
    `pairs` holds the cached connections (`atlas.store.circuits.scan`) and
    `dissections` the merged dissection per layer (`atlas.store.dissection.scan`) and
    `atlases` the activation atlases (`atlas.store.activation_atlas.scan`), whose photo
    patches lie under `atlas_root`; `dictionaries` the dictionary features per layer
    (`atlas.store.dictionary.scan`), whose crops lie under `dictionary_root`.
    """
    newest: dict[tuple, tuple[cache.Entry, EntryMeta]] = {}
    for entry in entries:
        try:
            meta = EntryMeta.from_dict(entry.meta)
        except (KeyError, TypeError, ValueError, AtlasError) as err:   # no readable unit: no page to put it on
            warnings.warn(f"cache entry {entry.key} names no unit ({err}); the site leaves it out", stacklevel=2)
            continue
        ident = (meta.model, meta.fingerprint, meta.unit)
        old = newest.get(ident)
        if old is None or meta.created_at >= old[1].created_at:
            newest[ident] = (entry, meta)

    by_id: dict[tuple, list[tuple[cache.Entry, EntryMeta]]] = {}
    for (model, fingerprint, _), item in newest.items():
        by_id.setdefault((model, fingerprint), []).append(item)

    cards = list(cards)
    known = {(str(c.get("name") or ""), str(c.get("fingerprint") or "")) for c in cards}
    for model, fingerprint in sorted(set(by_id) - known, key=str):
        cards.append(_card_from_entries(model, fingerprint, by_id[(model, fingerprint)]))

    models = [_model_view(card, by_id.get((str(card.get("name") or ""), str(card.get("fingerprint") or "")), []))
              for card in cards]
    models = [m for m in models if m.renders]
    models.sort(key=lambda m: (m.name, m.slug))
    if examples and examples_dir is not None:
        _attach_examples(models, examples, Path(examples_dir))
    _link_elsewhere(models)
    for model in models:
        _attach_photos(model, photos or {})
    if pairs:
        attach_connections(models, pairs)
    if dissections:
        attach_concepts(models, dissections)
    if atlases:
        attach_atlases(models, atlases, Path(atlas_root or "."))
    # Always: with no record left, a layer's cached feature pictures are on no page and publish nothing.
    attach_dictionaries(models, dictionaries or {}, Path(dictionary_root or "."), dissections)
    return models


def _card_from_entries(model: str, fingerprint: str, entries: list[tuple[cache.Entry, EntryMeta]]) -> dict:
    """A stand-in card for entries whose model card is missing, so they still show."""
    output = next((m.unit.layer for _, m in entries if m.unit.kind.is_class), None)
    return {"name": model, "slug": f"{model}-{str(fingerprint)[:8]}", "fingerprint": fingerprint,
            "weights": entries[0][1].weights, "layers": [], "output_layer": output, "class_names": None}


def _model_view(card: dict, entries: list[tuple[cache.Entry, EntryMeta]]) -> ModelView:
    model = ModelView(name=str(card.get("name", "")), slug=str(card.get("slug") or card.get("name")),
                      weights=str(card.get("weights", "")), fingerprint=str(card.get("fingerprint", "")),
                      class_names=card.get("class_names"))
    output = card.get("output_layer")
    for spec in card.get("layers") or []:
        model.layers.append(LayerView(model, str(spec["name"]), str(spec.get("type", "")),
                                      spec.get("channels"), spec["name"] == output,
                                      str(spec.get("kind", ""))))
    # Layers the card does not list (an older card, a stand-in) go last, in name order.
    for name in sorted({m.unit.layer for _, m in entries} - {layer.name for layer in model.layers}):
        model.layers.append(LayerView(model, name, "", None, name == output))

    by_unit: dict[tuple[str, int], list[Render]] = {}
    for entry, meta in entries:
        render = _render(model, entry, meta)
        model.renders.append(render)
        PLACE[render.unit.kind.page](model.layer(render.unit.layer), render, by_unit)

    for layer in model.layers:
        indices = sorted(i for (name, i) in by_unit if name == layer.name)
        for index in indices:
            renders = _gather_pictures(sorted(by_unit[(layer.name, index)], key=_render_order))
            name = None
            if layer.is_output and model.class_names and 0 <= index < len(model.class_names):
                name = str(model.class_names[index])
            layer.units.append(UnitView(layer, index, renders, class_name=name))
            for other in renders[1:]:   # grids show a unit's main render alone: only it needs a thumbnail
                other.thumb = None
        for before, after in zip(layer.units, layer.units[1:]):
            before.next, after.prev = after, before
        layer.directions.sort(key=lambda unit: unit.index)
        for before, after in zip(layer.directions, layer.directions[1:]):
            before.next, after.prev = after, before
        layer.layer_renders.sort(key=_render_order)
        for render in layer.layer_renders:   # shown whole on the layer page, never in a grid
            render.thumb = None
    return model


# Where each page kind's renders go (atlas.kinds.Page): one entry per page kind.
PLACE = {
    # beside the unit's other renders on its (layer, index) page
    Page.UNIT: lambda layer, render, by_unit: by_unit.setdefault((layer.name, render.unit.index), []).append(render),
    # whole on the layer page (DeepDream)
    Page.LAYER: lambda layer, render, by_unit: layer.layer_renders.append(render),
    # a page of its own, not a variant of a channel's page (a direction)
    Page.OWN: lambda layer, render, by_unit: layer.directions.append(
        UnitView(layer, render.unit.index, [render], prefix="direction-")),
    # on the page of the photo it imitates (a caricature)
    Page.PHOTO: lambda layer, render, by_unit: layer.caricatures.append(render),
    # on the layer's activation-atlas page, found by the cell that names its cache key
    Page.ATLAS: lambda layer, render, by_unit: layer.icons.__setitem__(render.key, render),
    # on the page of the dictionary feature whose record names its cache key
    Page.FEATURE: lambda layer, render, by_unit: layer.feature_pictures.__setitem__(render.key, render),
}


def _attach_photos(model: ModelView, photos: dict) -> None:
    """One page per photo with a caricature: the photo beside every layer's caricature."""
    by_photo: dict[str, list[Render]] = {}
    for layer in model.layers:
        for render in layer.caricatures:
            by_photo.setdefault(str(render.unit.param("photo")), []).append(render)
    for digest, renders in sorted(by_photo.items()):
        record = photos.get(digest)
        if record is None:   # its photo is gone from the cache: nothing to show beside the caricatures
            continue
        source = Path(record["path"])
        model.photos.append(PhotoView(model, digest, str(record.get("name") or digest),
                                      image=FULL.site_path(f"photo-{safe_name(digest)}", digest), source=source,
                                      renders=renders))
    named = {photo.digest: photo for photo in model.photos}
    for layer in model.layers:
        layer.caricatures = [r for r in layer.caricatures if str(r.unit.param("photo")) in named]
        layer.caricatures.sort(key=lambda r: named[str(r.unit.param("photo"))].name)


def _render_order(render: Render) -> tuple:
    """Main render first: plain positive channel/logit, then by objective and variant, pictures in order."""
    u = render.unit
    return (not render.is_plain, not render.ok, OBJECTIVES.index(u.objective), u.negative, u.diversity, u.picture)


def _gather_pictures(renders: list[Render]) -> list[Render]:
    """A unit's renders with every later picture of a variant put beside its first (`Render.others`)."""
    first: dict[tuple, Render] = {}
    kept = []
    for render in renders:
        u = render.unit
        variant = (u.objective, u.negative, u.diversity, u.params)
        if u.picture and variant in first:
            first[variant].others.append(render)
            render.thumb = None
            continue
        first.setdefault(variant, render)
        kept.append(render)
    return kept


def _render(model: ModelView, entry: cache.Entry, meta: EntryMeta) -> Render:
    # cache.scan checked every image against its sha256, so the records are sound.
    digests = [str(record["sha256"]) for record in entry.meta.get("images") or []]
    stem = safe_name(entry.key)  # keys are hex; a doctored cache still cannot escape images/
    ok = meta.ok and bool(digests)
    return Render(key=entry.key, meta=meta,
                  images=[FULL.site_path(stem, digest) for digest in digests] if ok else [],
                  sources=list(entry.image_paths) if ok else [],
                  thumb=THUMB.site_path(stem, digests[0]) if ok else None,
                  curve=curve_plot(meta.curve), weights=meta.weights or model.weights)


def _link_elsewhere(models: list[ModelView]) -> None:
    """Link each unit to the same unit elsewhere: the same channel index in the model's
    other layers (as the reference table follows channel 54 down VGG), and the same
    layer and index (or the same class) in other models."""
    def ident(unit: UnitView) -> tuple:
        return ("class", unit.index) if unit.layer.is_output else (unit.layer.name, unit.index)

    everywhere: dict[tuple, list[UnitView]] = {}
    for model in models:
        for unit in model.units:
            everywhere.setdefault(ident(unit), []).append(unit)
    for model in models:
        by_index: dict[int, list[UnitView]] = {}
        for unit in model.units:
            if not unit.layer.is_output:
                by_index.setdefault(unit.index, []).append(unit)
        for unit in model.units:
            same_model = [] if unit.layer.is_output else by_index[unit.index]
            others = [u for u in everywhere[ident(unit)] if u.layer.model is not model]
            unit.elsewhere = [u for u in same_model + others if u is not unit]


def _attach_examples(models: list[ModelView], examples: dict, examples_dir: Path) -> None:
    digests: dict[Path, str | None] = {}   # channels share crops of one image: hash each once
    for model in models:
        for layer in model.layers:
            result = examples.get((model.name, model.fingerprint, layer.name))
            if result is not None and layer.rendered:
                layer.examples = _example_set(result, examples_dir, digests)


def _example_set(result: dict, examples_dir: Path, digests: dict) -> ExampleSet:
    channels, best, skipped = [], [], 0
    for stored in result.get("channels") or []:
        shown = [view for view in (_example(item, examples_dir, digests) for item in stored) if view]
        skipped += len(stored) - len(shown)
        channels.append(shown)
        values = [number(item.get("value")) for item in stored if isinstance(item, dict)]
        best.append(max((v for v in values if v is not None), default=None))
    if skipped:
        warnings.warn(f"dataset examples {result.get('key')}: {skipped} crops missing or malformed; "
                      "the site leaves them out", stacklevel=3)
    dataset = str(result.get("dataset") or "")
    return ExampleSet(
        key=str(result.get("key", "")), k=_int(result.get("k")) or max(map(len, channels), default=0),
        images=_int(result.get("images")) or 0,
        dataset=posixpath.basename(dataset.replace("\\", "/").rstrip("/")) or dataset,
        size=_int(result.get("size")), receptive_field=_int(result.get("receptive_field")),
        channels=channels, best=best)


def _example(item, examples_dir: Path, digests: dict) -> ExampleView | None:
    """One stored example, or None when its crop is missing, unreadable or outside the cache."""
    if not isinstance(item, dict) or not isinstance(item.get("crop"), str):
        return None
    source = examples_dir / item["crop"]
    if source not in digests:
        digests[source] = _digest(source, examples_dir)
    digest = digests[source]
    if digest is None:
        return None
    box = item.get("box")
    box = tuple(int(v) for v in box) if isinstance(box, list) and len(box) == 4 and all(
        isinstance(v, (int, float)) for v in box) else None
    return ExampleView(image=f"{EXAMPLE_DIR}/{digest}.jpg", source=source,
                       value=number(item.get("value")), file=str(item.get("file", "")), box=box)


def _digest(source: Path, examples_dir: Path) -> str | None:
    """The crop's content hash, which names it in the site: a crop rewritten in the
    cache gets a new name, so a stale copy is never reused, and equal crops share one."""
    try:
        if not source.resolve().is_relative_to(examples_dir.resolve()):
            return None
        return hashlib.sha256(source.read_bytes()).hexdigest()[:20]
    except OSError:
        return None


def _int(value) -> int | None:
    value = number(value)
    return int(value) if value is not None and value == int(value) else None
