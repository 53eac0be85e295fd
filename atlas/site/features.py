"""Dictionary features on pages: a layer's feature index and one page per live feature.

The build stores one record per layer (`atlas.store.dictionary.LayerDictionary`): the
dictionary's quality on held-out photos and, per feature, how often it fires, the cache
key of its picture (the most frequent are pictured), its top photos and its strongest
channels. This module joins the pictures (placed in `layer.feature_pictures` by
`read.PLACE`) and publishes the photo crops; a channel's page lists the features whose
strongest channels include it, through `DictionaryView.of_channel`.

Dead features (they never fired on the held-out photos) get no page: the index counts them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..store.dictionary import Feature, LayerDictionary

if TYPE_CHECKING:
    from .renders import Render
    from .views import LayerView, ModelView

CROP_DIR = "images/dictionary"
SHOWN_ON_CHANNEL = 12     # a channel page lists at most this many of its features, strongest first


@dataclass
class FeatureExample:
    file: str
    value: float
    image: str                       # site path of the crop


@dataclass
class FeatureView:
    dictionary: "DictionaryView"
    record: Feature
    picture: "Render | None"
    examples: list[FeatureExample]
    prev: "FeatureView | None" = None
    next: "FeatureView | None" = None

    @property
    def index(self) -> int:
        return self.record.index

    @property
    def path(self) -> str:
        return f"{self.dictionary.layer.dir}/feature-{self.index}.html"

    @property
    def label(self) -> str:
        return f"{self.dictionary.layer.name} feature {self.index}"

    @property
    def thumb(self) -> str | None:
        """The grid's image: the picture's thumbnail, else the top photo's crop."""
        if self.picture is not None and self.picture.meta.ok and self.picture.thumb:
            return self.picture.thumb
        return self.examples[0].image if self.examples else None

    @property
    def channels(self) -> list[tuple[int, float, object]]:
        """(channel, weight, its unit page or None), strongest first."""
        layer = self.dictionary.layer
        return [(int(c), float(w), layer.page_of(int(c))) for c, w in self.record.channels]


@dataclass
class DictionaryView:
    layer: "LayerView"
    record: LayerDictionary
    features: list[FeatureView] = field(default_factory=list)     # live ones, by index
    crops: dict[str, Path] = field(default_factory=dict)          # site path -> cache file

    @property
    def path(self) -> str:
        return f"{self.layer.dir}/features.html"

    @property
    def by_frequency(self) -> list[FeatureView]:
        return sorted(self.features, key=lambda f: (-f.record.frequency, f.index))

    @property
    def dead(self) -> int:
        return len(self.record.features) - len(self.features)

    @property
    def pictured(self) -> int:
        return sum(f.picture is not None for f in self.features)

    @property
    def dataset(self) -> str:
        folder = self.record.dataset.replace("\\", "/").rstrip("/")
        return posixpath.basename(folder) or self.record.dataset

    def of_channel(self, channel: int) -> list[tuple[FeatureView, float]]:
        """The features whose strongest channels include `channel`, by the weight's size."""
        found = [(f, float(w)) for f in self.features for c, w in f.record.channels if int(c) == channel]
        return sorted(found, key=lambda item: -abs(item[1]))[:SHOWN_ON_CHANNEL]


def attach(models: list["ModelView"], records: dict, root: Path) -> None:
    """Give every layer its dictionary, from `atlas.store.dictionary.scan`'s records, whose
    crops lie under `root` (the cache's dictionary folder)."""
    for model in models:
        for layer in model.layers:
            record = records.get((model.name, model.fingerprint, layer.name))
            if record is not None:
                layer.dictionary = _view(layer, record, Path(root))


def _view(layer: "LayerView", record: LayerDictionary, root: Path) -> DictionaryView:
    view = DictionaryView(layer, record)
    for feature in record.features:
        if feature.frequency <= 0:
            continue
        examples = []
        for example in feature.examples:
            site_path = f"{CROP_DIR}/{posixpath.basename(example['crop'])}"
            view.crops[site_path] = root / example["crop"]
            examples.append(FeatureExample(str(example["file"]), float(example["value"]), site_path))
        picture = layer.feature_pictures.get(feature.picture) if feature.picture else None
        view.features.append(FeatureView(view, feature, picture, examples))
    for before, after in zip(view.features, view.features[1:]):
        before.next, after.prev = after, before
    return view
