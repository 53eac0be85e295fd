"""Activation atlases on pages: one zoomable page per stored atlas.

The build stores each atlas (`atlas.store.activation_atlas`) as grids of cells,
each naming the cache entry of its icon. This module joins those to the icons'
renders and writes what the page embeds: per grid level, every cell's place,
sample count, icon thumbnail, top classes (the page's labels, tooltip and class
filter), strongest channels (linked to their unit pages where rendered) and a few
photo patches. Icons publish as thumbnails only: the page never shows them larger.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .views import LayerView, ModelView

PATCH_DIR = "images/atlas"


@dataclass
class AtlasView:
    layer: "LayerView"
    record: dict
    patches: dict[str, Path] = field(default_factory=dict)    # site path -> cache file

    @property
    def class_index(self) -> int | None:
        return self.record.get("class_index")

    @property
    def path(self) -> str:
        suffix = f"-class-{self.class_index}" if self.class_index is not None else ""
        return f"{self.layer.dir}/atlas{suffix}.html"

    @property
    def title(self) -> str:
        model = self.layer.model
        if self.class_index is not None:
            return f"{self.layer.name} · class atlas of {model.class_name(self.class_index)}"
        return f"{self.layer.name} · activation atlas"

    @property
    def dataset(self) -> str:
        folder = str(self.record.get("dataset") or "")
        return posixpath.basename(folder.replace("\\", "/").rstrip("/")) or folder

    @property
    def icons(self) -> int:
        return sum(len(level["cells"]) for level in self.record["levels"])

    def data(self, url) -> dict:
        """What the page's script reads, as the template embeds it (`|tojson`, which escapes
        markup), with relative URLs already resolved for this page."""
        model, layer = self.layer.model, self.layer
        pages = {f.index: f for f in layer.dictionary.features} if layer.dictionary else {}
        levels = []
        for level in self.record["levels"]:
            cells = []
            for cell in level["cells"]:
                render = layer.icons.get(cell["icon"])
                thumb = url(render.thumb) if render is not None and render.meta.ok and render.thumb else None
                channels = [[c, v, url(page.path) if (page := layer.page_of(c)) else None]
                            for c, v in cell["channels"]]
                photos = [[name, url(f"{PATCH_DIR}/{posixpath.basename(crop)}")] for name, crop in cell["photos"]]
                features = [[f, v, url(pages[f].path) if f in pages else None] for f, v in cell.get("features", [])]
                cells.append([cell["row"], cell["column"], cell["count"], thumb,
                              [[c, a] for c, a in cell["classes"]], channels, photos, features])
            levels.append({"size": level["size"], "cells": cells})
        names = {c: model.class_name(c) for level in self.record["levels"] for cell in level["cells"]
                 for c, _ in cell["classes"]}
        return {"levels": levels, "names": {str(k): v for k, v in names.items()},
                "classes": model.class_names is not None, "features": self.labelled_by_features}

    @property
    def labelled_by_features(self) -> bool:
        """Whether its cells name the features of the layer's dictionary."""
        return any(cell.get("features") for level in self.record["levels"] for cell in level["cells"])


def attach(models: list["ModelView"], records: dict, atlas_root: Path) -> None:
    """Give every layer its atlases, from `atlas.store.activation_atlas.scan`'s records."""
    for model in models:
        for (name, fingerprint, layer_name, _), record in sorted(records.items(), key=lambda item: str(item[0])):
            if name != model.name or fingerprint != model.fingerprint:
                continue
            layer = model.layer(layer_name)
            if layer is None:
                continue
            view = AtlasView(layer, record)
            for level in record["levels"]:
                for cell in level["cells"]:
                    for _, crop in cell["photos"]:
                        view.patches[f"{PATCH_DIR}/{posixpath.basename(crop)}"] = Path(atlas_root) / crop
            layer.atlases.append(view)
        for layer in model.layers:
            for render in layer.icons.values():   # icons publish as thumbnails only
                render.images = []
            layer.atlases.sort(key=lambda a: (a.class_index is not None, a.class_index or 0))

