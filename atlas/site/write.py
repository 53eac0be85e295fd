"""Writing the whole site: read the cache, render every page, publish its images.

`write_site(cache_root, out_dir)` is a pure function of the cache (plus images it
already published, which it reuses). Layout of the written folder (every link
between pages is relative, so the site works from ``file://``, a local server,
or a GitHub Pages project sub-path)::

    index.html                                home: the models built
    style.css, filter.js, .nojekyll
    images/full/<key>-<sha>-<fmt>.avif        full renders (publish.FULL)
    images/thumb/<key>-<sha>-<fmt>.webp       grid thumbnails of each unit's main render
    images/examples/<sha>.jpg                 dataset-example crops, named by content
    models/<slug>/index.html                  model page
    models/<slug>/classes.html                class index (filterable)
    models/<slug>/results.html                the reference tables
    models/<slug>/concepts.html               the concept index (network dissection)
    models/<slug>/layers/<layer>/atlas.html   the layer's activation atlas (atlas-class-<n>.html: a class atlas)
    images/atlas/<sha>.jpg                    photo patches of atlas cells, named by content
    models/<slug>/layers/<layer>/index.html   layer page (grid of its units)
    models/<slug>/layers/<layer>/<n>.html     unit page
    models/<slug>/layers/<layer>/direction-<n>.html   a random direction's page
    models/<slug>/layers/<layer>/features.html        the layer's dictionary features (index)
    models/<slug>/layers/<layer>/feature-<n>.html     a dictionary feature's page
    images/dictionary/<sha>.jpg               crops of the photos that excite a feature most
    models/<slug>/photos/<digest>.html        a photo and every layer's caricature of it
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import quote

from ..store import cache
from ..core.errors import AtlasError
from ..store import activation_atlas as stored_atlas, circuits as stored_circuits, dissection as stored_dissection
from ..store import dictionary as stored_dictionary
from ..store import examples as stored_examples, photos as stored_photos
from .dissection import concept_index, summary as concept_summary
from .folder import claim, remove_stale, write_if_changed
from .pages import class_index, results_tables
from .publish import publish_images
from .read import model_views
from .size import DEFAULT_BUDGET, measure
from .templates import template_dir, template_env

STATIC_FILES = ("style.css", "filter.js", "atlas.js")


def write_site(cache_root: Path, out_dir: Path) -> Path:
    """Write the whole site for the cache at `cache_root` into `out_dir`; return index.html."""
    out = Path(out_dir)
    claim(out)
    models = model_views(cache.scan(cache_root), cache.load_model_cards(cache_root),
                         examples=stored_examples.scan(cache_root),
                         examples_dir=Path(cache_root) / stored_examples.FOLDER,
                         photos=stored_photos.scan(cache_root), pairs=stored_circuits.scan(cache_root),
                         dissections=stored_dissection.scan(cache_root), atlases=stored_atlas.scan(cache_root),
                         atlas_root=Path(cache_root) / stored_atlas.FOLDER,
                         dictionaries=stored_dictionary.scan(cache_root),
                         dictionary_root=Path(cache_root) / stored_dictionary.FOLDER)
    env = template_env()
    written: set[Path] = set()

    def page(template: str, path: str, **context) -> None:
        here = posixpath.dirname(path) or "."
        html = env.get_template(template).render(
            url=lambda target: quote(posixpath.relpath(target, here)), models=models, **context)
        target = out / path
        written.add(target)
        write_if_changed(target, html.encode())

    page("index.html", "index.html")
    for model in models:
        page("model.html", model.path, model=model, stats=model.stats(), concepts=concept_summary(model))
        if model.dissected:
            page("concepts.html", model.concepts_path, model=model, concepts=concept_index(model),
                 summary=concept_summary(model))
        page("results.html", model.results_path, model=model, results=results_tables(model))
        if model.output is not None:
            page("classes.html", model.classes_path, model=model, classes=class_index(model))
        for layer in model.layers:
            if not layer.rendered:
                continue
            page("layer.html", layer.path, model=model, layer=layer)
            for atlas in layer.atlases:
                page("atlas.html", atlas.path, model=model, layer=layer, atlas=atlas)
            if layer.dictionary is not None:
                page("features.html", layer.dictionary.path, model=model, layer=layer, dictionary=layer.dictionary)
                for feature in layer.dictionary.features:
                    page("feature.html", feature.path, model=model, layer=layer, dictionary=layer.dictionary,
                         feature=feature)
            for unit in layer.units + layer.directions:
                page("unit.html", unit.path, model=model, layer=layer, unit=unit)
        for photo in model.photos:
            page("photo.html", photo.path, model=model, photo=photo)

    images = publish_images(models, out)
    for name in STATIC_FILES:
        write_if_changed(out / name, (template_dir() / name).read_bytes())
    write_if_changed(out / ".nojekyll", b"")   # GitHub Pages: serve files as they are, no Jekyll
    remove_stale(out, written, images)
    return out / "index.html"


def publish(cache_dir: Path, out: Path, budget: int | None = None, say=print) -> Path:
    """Write the site from the cache alone, then `say` what it weighs by kind of file and
    warn, with the fix, when it is over `budget` bytes (default: GitHub Pages' 1 GB).
    A disk problem is a one-line error. Imports no torch: `atlas render` runs without it."""
    try:
        index = write_site(cache_dir, out)
        size = measure(out)
    except OSError as err:
        raise AtlasError(f"cannot write the site to {out}: {err.strerror or err}") from None
    say(f"site size: {size.summary()}")
    problem = size.over(budget or DEFAULT_BUDGET)
    if problem:
        say(f"warning: {problem}", err=True)
    return index
