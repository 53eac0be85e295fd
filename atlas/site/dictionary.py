"""Dictionary features on pages: a layer's feature index and one page per live feature.

The build stores one record per layer (`atlas.store.dictionary.LayerDictionary`): the
dictionary's quality on held-out photos and, per feature, how often it fires, the cache
key of its picture (only the most frequent are pictured), its top photos and its
strongest channels. This module joins the pictures (placed in `layer.feature_pictures`
by `read.PLACE`, as activation-atlas icons go into `layer.icons`) and names the photo
crops the site publishes under images/dictionary/; a channel's page lists the features
whose strongest channels include it, through `DictionaryView.of_channel`.

Dead features (they never fired on the held-out photos) get no page: the index counts them.
Where the features were dissected too (`atlas.dissection.features`), each page shows its
concept as a channel's page does, and the index counts the detectors.
"""

from __future__ import annotations

import base64
import io
import posixpath
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from ..core.entry import number
from ..store.dictionary import Feature, LayerDictionary, decode_heat, feature_layer
from .dissection import LayerConcepts

if TYPE_CHECKING:
    from .renders import Render
    from .views import LayerView, ModelView

CROP_DIR = "images/dictionary"
# How dark the heatmap makes a crop where its feature is quiet: a spotlight on where it fires
# reads on a photo of any colour, where a coloured glow vanishes on orange and red ones. The
# light goes as the square root of the heat, so a spot at half the peak still stands out.
QUIET_SHADE, LIGHT_GAMMA = 0.8, 0.5


@dataclass
class FeatureExample:
    file: str                        # the photo, as the dataset names it
    value: float                     # the feature's code there (pooled over the photo's positions)
    image: str                       # site path of the crop
    heat: np.ndarray | None = None   # where in the crop it fires (`store.dictionary.decode_heat`)
    heat_at: str | None = None       # its frame's place in the feature's `heat_sprite` (CSS)


@dataclass
class FeatureView:
    dictionary: "DictionaryView"
    record: Feature
    picture: "Render | None"         # its rendered picture, when it was pictured
    examples: list[FeatureExample]
    channels: list[tuple[int, float]]   # its strongest channels, signed weight, strongest first
    prev: "FeatureView | None" = None    # neighbours by index, for the page's pager
    next: "FeatureView | None" = None
    heat_sprite: str | None = None       # every example's heatmap in one image (`heat_sprite`)

    @property
    def heat_frames(self) -> int:
        return sum(e.heat_at is not None for e in self.examples)

    @property
    def index(self) -> int:
        return self.record.index

    @property
    def frequency(self) -> float:
        return float(self.record.frequency)

    @property
    def concepts(self):
        """Its dissection (`site.dissection.UnitConcepts`), where its features were dissected."""
        found = self.dictionary.concepts
        return found.unit(self.index) if found is not None else None

    @property
    def coherence(self) -> float | None:
        """How alike its top photos look to the model (None where the record has none)."""
        return number(self.record.coherence)

    @property
    def path(self) -> str:
        return f"{self.dictionary.layer.dir}/feature-{self.index}.html"

    @property
    def label(self) -> str:
        return f"{self.dictionary.layer.name} feature {self.index}"

    @property
    def pictured(self) -> bool:
        return self.picture is not None and self.picture.ok

    @property
    def thumb(self) -> str | None:
        """The grid's image: the picture's thumbnail, else the crop of its top photo."""
        if self.pictured and self.picture.thumb:
            return self.picture.thumb
        return self.examples[0].image if self.examples else None

    @property
    def labels(self) -> list[dict]:
        """The model's top classes on its picture, with names and class pages where rendered."""
        return self.dictionary.layer.model.labels_of(self.picture) if self.pictured else []

    @property
    def channel_links(self) -> list[tuple[int, float, object]]:
        """(channel, weight, that channel's unit page or None where it was not rendered)."""
        layer = self.dictionary.layer
        return [(channel, weight, layer.page_of(channel)) for channel, weight in self.channels]


@dataclass
class DictionaryView:
    layer: "LayerView"
    record: LayerDictionary
    features: list[FeatureView] = field(default_factory=list)     # the live ones, by index
    crops: dict[str, Path] = field(default_factory=dict)          # site path -> cache file, to publish
    concepts: LayerConcepts | None = None                          # the features' dissection, where there is one

    def detectors(self) -> int:
        """Live features whose concept is confirmed on both halves of the photos."""
        return sum(bool(f.concepts and f.concepts.detector) for f in self.features) if self.concepts else 0

    @property
    def path(self) -> str:
        return f"{self.layer.dir}/features.html"

    @property
    def shape(self) -> dict:
        return self.record.shape

    @property
    def quality(self) -> dict:
        return self.record.quality

    @property
    def by_frequency(self) -> list[FeatureView]:
        """The index's default order: what fires most is what a reader meets most in photos."""
        return sorted(self.features, key=lambda f: (-f.frequency, f.index))

    @property
    def has_coherence(self) -> bool:
        return any(f.coherence is not None for f in self.features)

    @property
    def dead(self) -> int:
        return len(self.record.features) - len(self.features)

    @property
    def pictured(self) -> int:
        return sum(f.pictured for f in self.features)

    @property
    def dataset(self) -> str:
        """The photo folder's last name: the full path is the builder's machine, not the reader's."""
        folder = self.record.dataset.replace("\\", "/").rstrip("/")
        return posixpath.basename(folder) or self.record.dataset

    def of_channel(self, channel: int) -> list[tuple[FeatureView, float]]:
        """Every feature whose strongest channels include `channel`, with its weight there,
        largest weight (either sign) first."""
        found = [(f, weight) for f in self.features for c, weight in f.channels if c == channel]
        return sorted(found, key=lambda item: (-abs(item[1]), item[0].index))


def attach(models: list["ModelView"], records: dict, root: Path, dissections: dict | None = None) -> None:
    """Give every layer its dictionary, from `atlas.store.dictionary.scan`'s records, whose
    crops lie under `root` (the cache's dictionary folder), and its features' dissection
    from `atlas.store.dissection.scan`'s results (stored under `feature_layer`)."""
    for model in models:
        for layer in model.layers:
            record = records.get((model.name, model.fingerprint, layer.name))
            if record is not None:
                layer.dictionary = _view(layer, record, Path(root))
                found = (dissections or {}).get((model.name, model.fingerprint, feature_layer(layer.name)))
                if found is not None and found.units == record.shape.get("size"):
                    layer.dictionary.concepts = LayerConcepts(found)
            _unpublish_orphans(layer)


def _view(layer: "LayerView", record: LayerDictionary, root: Path) -> DictionaryView:
    view = DictionaryView(layer, record)
    skipped = 0
    for feature in sorted(record.features, key=lambda f: f.index):
        if (number(feature.frequency) or 0) <= 0:   # dead (or unreadable): nothing to show on a page
            continue
        examples = [_example(item, root, view.crops) for item in feature.examples or []]
        skipped += examples.count(None)
        picture = layer.feature_pictures.get(feature.picture) if feature.picture else None
        shown = [e for e in examples if e]
        # One image a page holds every crop's heatmap, a frame each (alike, for one sprite)
        framed = [e for e in shown if e.heat is not None]
        framed = [e for e in framed if e.heat.shape == framed[0].heat.shape]
        for n, example in enumerate(framed):
            example.heat_at = f"0 {100 * n / max(len(framed) - 1, 1):.4g}%"
        view.features.append(FeatureView(view, feature, picture, shown, _channels(feature.channels),
                                         heat_sprite=heat_sprite([e.heat for e in framed])))
    if skipped:
        warnings.warn(f"dictionary of {layer.name}: {skipped} feature crops missing or malformed; "
                      "the site leaves them out", stacklevel=3)
    for before, after in zip(view.features, view.features[1:]):
        before.next, after.prev = after, before
    return view


def _example(item, root: Path, crops: dict[str, Path]) -> FeatureExample | None:
    """One stored example, its crop noted for publishing; None when the record is malformed
    or the crop is missing or outside the cache: copying it would fail the whole site."""
    if not isinstance(item, dict) or not isinstance(item.get("crop"), str) or number(item.get("value")) is None:
        return None
    # Crops are named by content (`store_by_content`), so the name is the site name too:
    # equal crops of two features publish once.
    site_path = f"{CROP_DIR}/{posixpath.basename(item['crop'])}"
    if site_path not in crops:
        source = root / item["crop"]
        try:
            sound = source.resolve().is_relative_to(root.resolve()) and source.is_file()
        except OSError:
            sound = False
        if not sound:
            return None
        crops[site_path] = source
    heat = item.get("heat")
    return FeatureExample(str(item.get("file", "")), number(item["value"]), site_path,
                          decode_heat(heat) if isinstance(heat, str) else None)


def heat_sprite(heats: list[np.ndarray]) -> str | None:
    """Square heatmaps (`store.dictionary.decode_heat`) stacked top to bottom in one small PNG,
    as a data URI a feature page stretches over each crop, a frame each: black, as opaque as
    the feature is quiet there; None for none. One image a page, not one a crop: nine
    heatmaps share their compression and a PNG's headers (half the bytes)."""
    if not heats:
        return None
    heat = np.concatenate(heats).astype(np.float32)
    shade = np.zeros((*heat.shape, 2), np.uint8)
    shade[..., 1] = ((1 - (heat / 255) ** LIGHT_GAMMA) * 255 * QUIET_SHADE).round()
    buffer = io.BytesIO()
    Image.fromarray(shade, "LA").save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _channels(pairs) -> list[tuple[int, float]]:
    """The record's [[channel, weight], ...], with any malformed pair left out."""
    found = []
    for pair in pairs or []:
        try:
            channel, weight = pair
            found.append((int(channel), float(weight)))
        except (TypeError, ValueError):
            continue
    return found


def _unpublish_orphans(layer: "LayerView") -> None:
    """Pictures no shown feature names (a dictionary learned again, its old pictures still
    cached) are on no page: publish none of their images."""
    shown = {f.picture.key for f in layer.dictionary.features if f.picture} if layer.dictionary else set()
    for key, render in layer.feature_pictures.items():
        if key not in shown:
            render.images, render.thumb = [], None
