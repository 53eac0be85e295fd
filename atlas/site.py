"""The static website: cache entries in, a folder of plain HTML, CSS and images out.

`write_site(cache_root, out_dir)` reads the cache and writes every page; it is a
pure function of the cache (plus images it already made, which it reuses).
Layout of the written folder (every link between pages is relative, so the site
works from ``file://``, a local server, or a GitHub Pages project sub-path)::

    index.html                                home: the models built
    style.css, filter.js, .nojekyll
    images/full/<key>-<sha>.png               full renders, linked from the cache
    images/thumb/<key>-<sha>.webp             grid thumbnails, made once
    images/examples/<sha>.jpg                 dataset-example crops, named by content
    models/<slug>/index.html                  model page
    models/<slug>/classes.html                class index (filterable)
    models/<slug>/results.html                the reference tables
    models/<slug>/layers/<layer>/index.html   layer page (grid of its units)
    models/<slug>/layers/<layer>/<n>.html     unit page

`serve(site_dir)` previews the folder on localhost.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import posixpath
import re
import secrets
import shutil
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import jinja2
from PIL import Image

from . import cache
from .errors import AtlasError
from .reference import REFERENCE_CHANNELS, REFERENCE_CLASSES, reference_channel_label, reference_channel_layer
from .units import OBJECTIVES, Unit

THUMB_PX = 192          # 2x the ~96 px grid cell, so thumbnails stay sharp on dense screens
THUMB_FORMAT, THUMB_EXT = "WEBP", "webp"
MARKER = ".atlas-site"  # proves a folder is ours before we delete stale pages from it
STATIC_FILES = ("style.css", "filter.js")
CURVE_W, CURVE_H, CURVE_POINTS = 360, 120, 240


# ----------------------------------------------------------------------------- views
# Plain records the templates read. Built once from the cache, never mutated by templates.

@dataclass
class Render:
    """One cache entry as a page shows it."""
    key: str
    unit: Unit
    ok: bool
    error: str
    images: list[str]            # site paths of the full PNGs
    sources: list[Path]          # the cache files they come from
    thumb: str | None            # site path of the grid thumbnail of images[0]
    size: int | None
    curve: dict | None
    final_objective: float | None
    class_probability: float | None
    settings: dict
    recipe_version: object
    seconds: float
    device: str
    created: str
    weights: str

    @property
    def variant(self) -> str:
        return self.unit.variant

    @property
    def is_plain(self) -> bool:
        u = self.unit
        return u.objective in ("channel", "logit") and not u.negative and u.diversity == 1


@dataclass
class ExampleView:
    """One natural image among a unit's top examples: the crop the page shows."""
    image: str                   # site path of the published crop
    source: Path                 # the crop in the cache
    value: float | None          # the unit's objective on the image
    file: str                    # the image, relative to the dataset folder
    box: tuple[int, int, int, int] | None

    @property
    def name(self) -> str:
        return posixpath.basename(self.file.replace("\\", "/")) or self.file


@dataclass
class ExampleSet:
    """One layer's stored dataset-examples result as the pages show it."""
    key: str
    k: int
    images: int                  # images in the dataset
    dataset: str                 # the dataset folder's name (never its full local path)
    size: int | None             # side of the model-input view the crops come from
    receptive_field: int | None
    channels: list[list[ExampleView]]
    best: list[float | None]     # each channel's best stored value, shown or not

    @property
    def whole_image(self) -> bool:
        return not self.receptive_field or not self.size or self.receptive_field >= self.size


@dataclass
class UnitView:
    """One (layer, index) of a model: the page shows all renders of it."""
    layer: "LayerView"
    index: int
    renders: list[Render]        # main render first
    class_name: str | None = None
    prev: "UnitView | None" = None
    next: "UnitView | None" = None
    elsewhere: list["UnitView"] = field(default_factory=list)

    @property
    def main(self) -> Render:
        return self.renders[0]

    @property
    def label(self) -> str:
        return f"{self.layer.name}[{self.index}]"

    @property
    def path(self) -> str:
        return f"{self.layer.dir}/{self.index}.html"

    @property
    def examples(self) -> list[ExampleView]:
        found = self.layer.examples
        return found.channels[self.index] if found and self.index < len(found.channels) else []

    @property
    def comparison(self) -> dict | None:
        """The main render's final objective against the best natural example, where the
        two measure the same thing (a plain channel or logit render)."""
        found = self.layer.examples
        render = self.main
        if not (found and render.ok and render.is_plain and self.index < len(found.best)):
            return None
        return compare_to_examples(render.final_objective, found.best[self.index],
                                   render.size, found.size)


@dataclass
class LayerView:
    model: "ModelView"
    name: str
    type: str
    channels: int | None
    is_output: bool
    kind: str = ""               # "conv", "linear" or "other", from the model card
    units: list[UnitView] = field(default_factory=list)
    layer_renders: list[Render] = field(default_factory=list)   # DeepDream: the whole layer
    examples: ExampleSet | None = None                          # top natural images per channel

    @property
    def dir(self) -> str:
        return f"{self.model.dir}/layers/{safe_name(self.name)}"

    @property
    def path(self) -> str:
        return f"{self.dir}/index.html"

    @property
    def ok_units(self) -> list[UnitView]:
        return [u for u in self.units if u.main.ok]

    @property
    def rendered(self) -> bool:
        return bool(self.units or self.layer_renders)

    @property
    def example_objective(self) -> str:
        """What ranks this layer's dataset examples, as `find_examples` measures it."""
        if self.is_output:
            return "class logit"
        flat = self.kind == "linear" if self.kind else self.type == "Linear"   # no spatial map to average
        return "activation" if flat else "channel mean"

    @property
    def example_tiles(self) -> list[dict]:
        """The best example of every channel that has one, linked to its unit page if rendered."""
        if not self.examples:
            return []
        pages = {u.index: u for u in self.units}
        names = self.model.class_names if self.is_output else None
        return [{"index": i, "example": shown[0], "unit": pages.get(i),
                 "name": str(names[i]) if names and i < len(names) else None}
                for i, shown in enumerate(self.examples.channels) if shown]

    @property
    def listed(self) -> bool:
        """Whether the model page lists it: ReLUs, pools and containers only when rendered."""
        conv = self.kind == "conv" if self.kind else self.type.startswith("Conv")
        return self.rendered or self.is_output or conv


@dataclass
class ModelView:
    name: str
    slug: str
    weights: str
    fingerprint: str
    class_names: list[str] | None
    layers: list[LayerView] = field(default_factory=list)
    renders: list[Render] = field(default_factory=list)

    @property
    def dir(self) -> str:
        return f"models/{safe_name(self.slug)}"

    @property
    def path(self) -> str:
        return f"{self.dir}/index.html"

    @property
    def classes_path(self) -> str:
        return f"{self.dir}/classes.html"

    @property
    def results_path(self) -> str:
        return f"{self.dir}/results.html"

    @property
    def output(self) -> LayerView | None:
        return next((layer for layer in self.layers if layer.is_output), None)

    @property
    def units(self) -> list[UnitView]:
        return [u for layer in self.layers for u in layer.units]

    def layer(self, name: str) -> LayerView | None:
        return next((layer for layer in self.layers if layer.name == name), None)

    def stats(self) -> dict:
        units = self.units
        return {
            "units": sum(u.main.ok for u in units),
            "failed": sum(not u.main.ok for u in units),
            "images": sum(len(r.images) for r in self.renders),
            "seconds": sum(r.seconds for r in self.renders),
            "devices": sorted({r.device for r in self.renders if r.device}),
            "settings": common_settings(self.renders),
            "layers": sum(layer.rendered for layer in self.layers),
        }

    def samples(self, count: int = 8) -> list[UnitView]:
        """A few images for the home page: one per layer, deepest layers first."""
        firsts = [layer.ok_units[0] for layer in reversed(self.layers) if layer.ok_units]
        return firsts[:count]


# ----------------------------------------------------------------------------- entry point

def write_site(cache_root: Path, out_dir: Path) -> Path:
    """Write the whole site for the cache at `cache_root` into `out_dir`; return index.html."""
    out = Path(out_dir)
    _claim(out)
    examples = {}
    if (Path(cache_root) / "examples").is_dir():   # the reader imports torch: only when needed
        from .examples import scan_examples
        examples = scan_examples(cache_root)
    models = build_models(cache.scan(cache_root), cache.load_model_cards(cache_root),
                          examples, Path(cache_root) / "examples")
    env = template_env()
    written: set[Path] = set()

    def page(template: str, path: str, **context) -> None:
        here = posixpath.dirname(path) or "."
        html = env.get_template(template).render(
            url=lambda target: quote(posixpath.relpath(target, here)), models=models, **context)
        target = out / path
        written.add(target)
        _write_if_changed(target, html.encode())

    page("index.html", "index.html")
    for model in models:
        page("model.html", model.path, model=model, stats=model.stats())
        page("results.html", model.results_path, model=model, results=results_tables(model))
        if model.output is not None:
            page("classes.html", model.classes_path, model=model, classes=class_index(model))
        for layer in model.layers:
            if not layer.rendered:
                continue
            page("layer.html", layer.path, model=model, layer=layer)
            for unit in layer.units:
                page("unit.html", unit.path, model=model, layer=layer, unit=unit)

    images = publish_images(models, out)
    for name in STATIC_FILES:
        _write_if_changed(out / name, (template_dir() / name).read_bytes())
    _write_if_changed(out / ".nojekyll", b"")   # GitHub Pages: serve files as they are, no Jekyll
    _remove_stale(out, written, images)
    return out / "index.html"


# ----------------------------------------------------------------------------- cache -> views

def build_models(entries, cards: list[dict], examples: dict | None = None,
                 examples_dir: Path | None = None) -> list[ModelView]:
    """Group cache entries under their model card, newest render per unit, pages linked up.

    `examples` maps (model, fingerprint, layer) to a stored dataset-examples result
    (`atlas.examples.scan_examples`), whose crops lie under `examples_dir`.
    """
    newest: dict[tuple, cache.Entry] = {}
    for entry in entries:
        meta = entry.meta
        unit = entry.unit
        ident = (meta.get("model"), meta.get("fingerprint"), unit)
        old = newest.get(ident)
        if old is None or _created(meta) >= _created(old.meta):
            newest[ident] = entry

    by_id: dict[tuple, list[cache.Entry]] = {}
    for (model, fingerprint, _), entry in newest.items():
        by_id.setdefault((model, fingerprint), []).append(entry)

    cards = list(cards)
    known = {(c.get("name"), c.get("fingerprint")) for c in cards}
    for model, fingerprint in sorted(set(by_id) - known, key=str):
        cards.append(_card_from_entries(model, fingerprint, by_id[(model, fingerprint)]))

    models = [_model_view(card, by_id.get((card.get("name"), card.get("fingerprint")), []))
              for card in cards]
    models = [m for m in models if m.renders]
    models.sort(key=lambda m: (m.name, m.slug))
    if examples and examples_dir is not None:
        _attach_examples(models, examples, Path(examples_dir))
    _link_elsewhere(models)
    return models


def _card_from_entries(model: str, fingerprint: str, entries: list[cache.Entry]) -> dict:
    """A stand-in card for entries whose model card is missing, so they still show."""
    output = next((e.unit.layer for e in entries if e.unit.objective in ("logit", "prob")), None)
    return {"name": model, "slug": f"{model}-{str(fingerprint)[:8]}", "fingerprint": fingerprint,
            "weights": entries[0].meta.get("weights", ""), "layers": [], "output_layer": output,
            "class_names": None}


def _model_view(card: dict, entries: list[cache.Entry]) -> ModelView:
    model = ModelView(name=str(card.get("name", "")), slug=str(card.get("slug") or card.get("name")),
                      weights=str(card.get("weights", "")), fingerprint=str(card.get("fingerprint", "")),
                      class_names=card.get("class_names"))
    output = card.get("output_layer")
    for spec in card.get("layers") or []:
        model.layers.append(LayerView(model, str(spec["name"]), str(spec.get("type", "")),
                                      spec.get("channels"), spec["name"] == output,
                                      str(spec.get("kind", ""))))
    # Layers the card does not list (an older card, a stand-in) go last, in name order.
    for name in sorted({e.unit.layer for e in entries} - {layer.name for layer in model.layers}):
        model.layers.append(LayerView(model, name, "", None, name == output))

    by_unit: dict[tuple[str, int], list[Render]] = {}
    for entry in entries:
        render = _render(model, entry)
        model.renders.append(render)
        if render.unit.objective == "deepdream":
            model.layer(render.unit.layer).layer_renders.append(render)
        else:
            by_unit.setdefault((render.unit.layer, render.unit.index), []).append(render)

    for layer in model.layers:
        indices = sorted(i for (name, i) in by_unit if name == layer.name)
        for index in indices:
            renders = sorted(by_unit[(layer.name, index)], key=_render_order)
            name = None
            if layer.is_output and model.class_names and 0 <= index < len(model.class_names):
                name = str(model.class_names[index])
            layer.units.append(UnitView(layer, index, renders, class_name=name))
        for before, after in zip(layer.units, layer.units[1:]):
            before.next, after.prev = after, before
        layer.layer_renders.sort(key=_render_order)
    return model


def _render_order(render: Render) -> tuple:
    """Main render first: plain positive channel/logit, then by objective and variant."""
    u = render.unit
    return (not render.is_plain, not render.ok, OBJECTIVES.index(u.objective), u.negative, u.diversity)


def _render(model: ModelView, entry: cache.Entry) -> Render:
    meta = entry.meta
    records = meta.get("images") or []
    stem = safe_name(entry.key)  # keys are hex; a doctored cache still cannot escape images/
    names = [f"images/full/{stem}-{r['sha256'][:16]}.png" for r in records]
    thumb = f"images/thumb/{stem}-{records[0]['sha256'][:16]}.{THUMB_EXT}" if records and entry.ok else None
    settings = meta.get("settings") or {}
    return Render(
        key=entry.key, unit=entry.unit, ok=entry.ok and bool(names),
        error=str(meta.get("error") or ("no images" if entry.ok else "unknown error")),
        images=names if entry.ok else [], sources=list(entry.image_paths) if entry.ok else [],
        thumb=thumb, size=settings.get("size"), curve=curve_plot(meta.get("curve") or []),
        final_objective=_number(meta.get("final_objective")),
        class_probability=_number(meta.get("class_probability")),
        settings=settings, recipe_version=meta.get("recipe_version"),
        seconds=_number(meta.get("seconds")) or 0.0, device=str(meta.get("device") or ""),
        created=str(meta.get("created") or ""), weights=str(meta.get("weights") or model.weights))


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
        values = [_number(item.get("value")) for item in stored if isinstance(item, dict)]
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
    return ExampleView(image=f"images/examples/{digest}.jpg", source=source,
                       value=_number(item.get("value")), file=str(item.get("file", "")), box=box)


def _digest(source: Path, examples_dir: Path) -> str | None:
    """The crop's content hash, which names it in the site: a crop rewritten in the
    cache gets a new name, so a stale copy is never reused, and equal crops share one."""
    try:
        if not source.resolve().is_relative_to(examples_dir.resolve()):
            return None
        return hashlib.sha256(source.read_bytes()).hexdigest()[:20]
    except OSError:
        return None


def compare_to_examples(final: float | None, best: float | None, render_size: int | None = None,
                        examples_size: int | None = None) -> dict | None:
    """How far beyond natural images the optimization went: the visualization's final
    objective over the best example's. Only a positive best gives a ratio: at or below
    zero no natural image excites the unit and a ratio would be meaningless (or flip sign)."""
    if final is None or best is None:
        return None
    note = (f"visualization at {render_size} px, examples at {examples_size} px"
            if render_size and examples_size and render_size != examples_size else "")
    if best > 1e-9:
        ratio = final / best
        return {"ratio": ratio, "ratio_text": f"{format_ratio(ratio)}×", "final": final, "best": best,
                "note": note, "text": f"{format_ratio(ratio)}× the best natural example"}
    return {"ratio": None, "ratio_text": "", "final": final, "best": best, "note": note,
            "text": "no ratio: the best natural example is not above zero"}


def format_ratio(ratio: float) -> str:
    size = abs(ratio)
    text = f"{ratio:,.0f}" if size >= 10 else f"{ratio:.1f}" if size >= 1 else f"{ratio:.2f}"
    return text.replace("-", "−")


def _int(value) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == int(number) else None


def _created(meta: dict) -> float:
    """Sortable time of an entry; naive timestamps are taken as UTC."""
    try:
        moment = datetime.fromisoformat(str(meta.get("created")))
    except ValueError:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# ----------------------------------------------------------------------------- page data

def curve_plot(values: list) -> dict | None:
    """Polyline points for the objective curve, drawn by the template as inline SVG."""
    points = [(i, v) for i, v in enumerate(map(_number, values)) if v is not None]
    if len(points) < 2:
        return None
    stride = max(1, math.ceil(len(points) / CURVE_POINTS))
    shown = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span, last_step = (hi - lo) or 1.0, points[-1][0] or 1
    xy = " ".join(f"{i / last_step * CURVE_W:.1f},{(hi - v) / span * CURVE_H:.1f}" for i, v in shown)
    return {"points": xy, "min": lo, "max": hi, "first": points[0][1], "last": points[-1][1],
            "steps": len(values), "width": CURVE_W, "height": CURVE_H}


def common_settings(renders: list[Render]) -> dict:
    """The settings most renders of a model used (a build normally uses one set)."""
    counts = Counter(tuple(sorted(r.settings.items())) for r in renders if r.settings)
    return dict(counts.most_common(1)[0][0]) if counts else {}


def results_tables(model: ModelView) -> dict:
    """The two reference tables. Each cell holds its unit, or says why it has none:
    `absent` when this model cannot render it at all, else the build command does."""
    def cell(layer: LayerView | None, index: int, what: str, **fields) -> dict:
        unit = next((u for u in layer.units if u.index == index), None) if layer else None
        absent = None
        if layer is None:
            absent = f"{model.name} has no layer {what}"
        elif layer.channels is not None and index >= layer.channels:
            absent = f"{layer.name} has only {layer.channels} {'classes' if layer.is_output else 'channels'}"
        return {**fields, "index": index, "unit": unit, "ok": bool(unit and unit.main.ok), "absent": absent}

    channels = [cell(model.layer(reference_channel_layer(n)), k, reference_channel_layer(n),
                     label=reference_channel_label(n, k))
                for n, k in REFERENCE_CHANNELS]
    classes = [cell(model.output, i, "for class logits", name=name) for i, name in REFERENCE_CLASSES.items()]
    return {"channels": channels, "classes": classes,
            "command": f"atlas build {model.name} --preset results"}


def class_index(model: ModelView) -> list[dict]:
    """Every class of the output layer, its name, and its unit where rendered."""
    output = model.output
    rendered = {u.index: u for u in output.units}
    count = len(model.class_names) if model.class_names else (output.channels or 0)
    count = max([count, *(i + 1 for i in rendered)])
    names = model.class_names or []
    return [{"index": i, "name": str(names[i]) if i < len(names) else f"class {i}",
             "unit": rendered.get(i), "ok": bool(rendered.get(i) and rendered[i].main.ok)}
            for i in range(count)]


# ----------------------------------------------------------------------------- images

def publish_images(models: list[ModelView], out: Path) -> set[Path]:
    """Put every image the pages reference into the site; return their paths.

    Names carry the entry key and the image's sha256, so a file already there is
    the right one and is skipped: a rewrite only adds what is new.
    """
    jobs = {}
    for model in models:
        for render in model.renders:
            for name, source in zip(render.images, render.sources):
                jobs[out / name] = functools.partial(_link_or_copy, source)
            if render.thumb:
                jobs[out / render.thumb] = functools.partial(_make_thumbnail, render.sources[0])
        for layer in model.layers:
            for shown in layer.examples.channels if layer.examples else []:
                for example in shown:
                    jobs[out / example.image] = functools.partial(_link_or_copy, example.source)
    todo = [(target, job) for target, job in jobs.items() if not target.exists()]
    for folder in {target.parent for target, _ in todo}:
        folder.mkdir(parents=True, exist_ok=True)
    # Pillow releases the GIL while decoding and encoding, so threads do use the cores.
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(lambda item: item[1](item[0]), todo))
    return set(jobs)


def _link_or_copy(source: Path, target: Path) -> None:
    # Cache images are never rewritten in place, so a hard link is safe, costs no
    # disk, and appears whole at once. Across file systems, copy then rename.
    try:
        os.link(source, target)
        return
    except FileExistsError:
        return
    except OSError:
        pass
    tmp = _tmp_name(target)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _make_thumbnail(source: Path, target: Path) -> None:
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((THUMB_PX, THUMB_PX), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, THUMB_FORMAT, quality=80, method=2)  # method 2: 3x faster, same look
    tmp = _tmp_name(target)
    tmp.write_bytes(buffer.getvalue())
    os.replace(tmp, target)   # a killed build never leaves a half thumbnail that later runs skip


def _write_if_changed(target: Path, data: bytes) -> None:
    """Leave unchanged pages alone (a rebuild mostly rewrites identical pages), and
    replace changed ones by a new file: truncating an old file in place makes ext4
    flush it to disk on close, which costs milliseconds per page."""
    try:
        if target.read_bytes() == data:
            return
        target.unlink()
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _tmp_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")


# ----------------------------------------------------------------------------- site folder

def _claim(out: Path) -> None:
    """Refuse to write into a non-empty folder that is not a site we wrote before,
    because a rewrite deletes the HTML pages it no longer produces. A `.git` alone
    is fine: a gh-pages worktree checked out as the site folder."""
    if out.exists() and not out.is_dir():
        raise AtlasError(f"{out} is a file; the site needs a folder")
    foreign = out.exists() and any(p.name != ".git" for p in out.iterdir())
    if foreign and not (out / MARKER).exists():
        raise AtlasError(f"{out} is not empty and was not written by atlas; "
                         "choose an empty or new folder for the site")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by atlas; pages here are replaced on every site build\n")


def _remove_stale(out: Path, pages: set[Path], images: set[Path]) -> None:
    """Drop pages of units no longer in the cache, unreferenced images, left-over temp
    files, then empty folders; never look inside a `.git` (a gh-pages worktree)."""
    for folder, dirs, files in os.walk(out, topdown=False):
        if ".git" in Path(folder).relative_to(out).parts:
            continue
        here = Path(folder)
        for name in files:
            path = here / name
            stale_page = path.suffix == ".html" and path not in pages
            stale_image = path.is_relative_to(out / "images") and path not in images
            if stale_image and _in_flight(path):
                continue  # another site writer's temp file, about to be renamed into place
            if stale_page or stale_image:
                path.unlink()
        if here != out and not any(here.iterdir()):
            here.rmdir()


def _in_flight(path: Path, grace_seconds: float = 600) -> bool:
    """A temp file young enough that its writer may still be running."""
    try:
        return path.name.endswith(".tmp") and time.time() - path.stat().st_mtime < grace_seconds
    except FileNotFoundError:
        return False


def safe_name(name: str) -> str:
    """A file name for any layer name or slug; names that had to change get a hash
    suffix so two different names never share a file."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "_"
    if safe != name:
        safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return safe


# ----------------------------------------------------------------------------- templates

def template_dir() -> Path:
    """The templates folder: the installed `atlas.templates` package, or, when running
    from a source checkout that is not installed, the repository's templates/."""
    try:
        from importlib.resources import files
        return Path(str(files("atlas.templates")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "templates"


@functools.cache
def template_env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(template_dir())),
        autoescape=True,                  # names come from model files and users
        undefined=jinja2.StrictUndefined,  # a template typo fails the build, not the page
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["duration"] = format_duration
    env.filters["num"] = format_number
    return env


def format_duration(seconds: float) -> str:
    seconds = float(seconds or 0)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.1f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60)} min"


def format_number(value) -> str:
    return "–" if value is None else f"{value:.4g}"


# ----------------------------------------------------------------------------- preview server

class _Handler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".webp": "image/webp"}


class _QuietHandler(_Handler):
    def log_message(self, *args) -> None:
        pass


def make_server(site_dir: Path, host: str = "127.0.0.1", port: int = 8000,
                quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for the site folder (port 0 picks a free port); not yet serving."""
    handler = functools.partial(_QuietHandler if quiet else _Handler, directory=str(site_dir))
    try:
        return ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise AtlasError(f"cannot serve on {host}:{port}: {err.strerror or err}") from err


def serve(site_dir: Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Preview the site at http://host:port/ until interrupted."""
    site_dir = Path(site_dir)
    if not (site_dir / "index.html").is_file():
        raise AtlasError(f"no site in {site_dir}; build one first (atlas build MODEL)")
    with make_server(site_dir, host, port) as server:
        print(f"Serving {site_dir} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
