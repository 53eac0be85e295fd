"""What one cache entry and one dataset example look like to a page.

`Render` is a cache entry's stored metadata (`atlas.core.entry.EntryMeta`) plus where
its published images are; `ExampleView` and `ExampleSet` are a layer's stored dataset
examples as pages show them. The page records that hold them are `atlas.site.views`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path

from ..core.entry import EntryMeta
from ..core.units import Unit


@dataclass
class Render:
    """One cache entry as a page shows it: its stored metadata plus where its images are."""
    key: str
    meta: EntryMeta
    images: list[str]            # site paths of the published full images
    sources: list[Path]          # the cache PNGs they are made from
    thumb: str | None = None     # site path of the grid thumbnail; only a unit's main render has one
    curve: dict | None = None    # the objective curve as `pages.curve_plot` draws it
    weights: str = ""            # the entry's weights, else its model's
    # The unit's other pictures of this variant (other seeds, `--pictures N`), shown with it as a set.
    others: list["Render"] = field(default_factory=list)

    @property
    def pictures(self) -> list["Render"]:
        """This render and its unit's other pictures of the same variant, in seed order."""
        return [self] + [r for r in self.others if r.ok]

    @property
    def unit(self) -> Unit:
        return self.meta.unit

    @property
    def ok(self) -> bool:
        return self.meta.ok and bool(self.images)

    @property
    def error(self) -> str:
        return self.meta.error or ("no images" if self.meta.ok else "unknown error")

    @property
    def size(self) -> int | None:
        return self.meta.size

    @property
    def settings(self) -> dict:
        return dict(self.meta.settings)

    @property
    def final_objective(self) -> float | None:
        return self.meta.final_objective

    @property
    def class_probability(self) -> float | None:
        return self.meta.class_probability

    @property
    def recipe_version(self):
        return self.meta.recipe_version

    @property
    def seconds(self) -> float:
        return self.meta.seconds

    @property
    def device(self) -> str:
        return self.meta.device

    @property
    def created(self) -> str:
        return self.meta.created

    @property
    def variant(self) -> str:
        return self.unit.variant

    @property
    def is_plain(self) -> bool:
        u = self.unit
        return u.kind.plain and not u.negative and u.diversity == 1 and u.picture == 0

    @property
    def labels(self) -> tuple[tuple[int, float], ...]:
        """What the model calls the image: (class, probability), most probable first."""
        return self.meta.labels


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
