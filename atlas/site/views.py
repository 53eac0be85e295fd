"""The records the templates read: a model, its layers, their units, a photo's caricatures.

Built once from the cache by `atlas.site.read`, never mutated by templates. A unit's
renders and a layer's dataset examples are `atlas.site.renders`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..core.text import safe_name
from .figures import common_settings, compare_to_examples
from .renders import ExampleSet, ExampleView, Render


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
    prefix: str = ""             # "direction-": a page of its own beside the channel pages

    @property
    def main(self) -> Render:
        return self.renders[0]

    @property
    def label(self) -> str:
        return f"{self.layer.name} direction {self.index}" if self.prefix else f"{self.layer.name}[{self.index}]"

    @property
    def path(self) -> str:
        return f"{self.layer.dir}/{self.prefix}{self.index}.html"

    @property
    def inputs(self) -> list:
        """The strongest channels of the previous rendered layer feeding this unit."""
        links = self.layer.inputs
        return links.ranked(self.index) if links is not None and not self.prefix else []

    @property
    def outputs(self) -> list:
        """The strongest channels (or classes) of the next rendered layer this unit feeds."""
        links = self.layer.outputs
        return links.ranked(self.index) if links is not None and not self.prefix else []

    @property
    def labels(self) -> list[dict]:
        """The model's top classes for the main image, with names and class pages where rendered."""
        return self.layer.model.labels_of(self.main)

    @property
    def concepts(self):
        """This unit's dissection (concepts.UnitConcepts), where its layer was dissected."""
        found = self.layer.concepts
        return found.unit(self.index) if found is not None and not self.prefix else None

    @property
    def dead(self) -> str:
        """Why this unit is dead, "" when it is not (issue 35). "photos": its dissection found
        every value on the photos in a tiny band. "render": no dissection covers it, and its
        objective never left FLAT_BAND from the random start through every step. Photos
        decide where there are some: a unit the optimizer cannot move may still fire on them."""
        found = None if self.prefix or self.layer.concepts is None else self.layer.concepts.result
        if found is not None and 0 <= self.index < found.units:   # read directly: grids ask for every tile
            return "photos" if found.is_dead(self.index) else ""
        return "render" if self.main.ok and self.main.meta.flat else ""

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
    directions: list[UnitView] = field(default_factory=list)    # random directions, each on its own page
    caricatures: list[Render] = field(default_factory=list)     # what this layer makes of each photo
    inputs: object = None        # connections.Links from the previous rendered layer
    outputs: object = None       # connections.Links to the next rendered layer
    concepts: object = None      # concepts.LayerConcepts: this layer's network dissection
    icons: dict = field(default_factory=dict)               # activation-atlas icons by cache key
    atlases: list = field(default_factory=list)             # atlas.AtlasView: this layer's activation atlases
    feature_pictures: dict = field(default_factory=dict)    # dictionary features' pictures by cache key
    dictionary: object = None    # dictionary.DictionaryView: this layer's dictionary features
    connections_note: str = ""   # why this layer has no connections, when it has none

    @property
    def dir(self) -> str:
        return f"{self.model.dir}/layers/{safe_name(self.name)}"

    @property
    def path(self) -> str:
        return f"{self.dir}/index.html"

    def page_of(self, index: int) -> "UnitView | None":
        """The unit page of channel (or class) `index`, where it was rendered."""
        return next((u for u in self.units if u.index == index), None)

    @property
    def ok_units(self) -> list[UnitView]:
        return [u for u in self.units if u.main.ok]

    @property
    def dead_units(self) -> list[UnitView]:
        """The rendered units found dead, by their photos or by their render."""
        return [u for u in self.units if u.dead]

    @property
    def rendered(self) -> bool:
        return bool(self.units or self.layer_renders or self.directions or self.caricatures or self.atlases
                    or self.dictionary)

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
    photos: list["PhotoView"] = field(default_factory=list)

    @property
    def dir(self) -> str:
        return f"models/{safe_name(self.slug)}"

    def class_name(self, index: int) -> str:
        names = self.class_names or []
        return str(names[index]) if 0 <= index < len(names) else f"class {index}"

    def class_unit(self, index: int) -> "UnitView | None":
        output = self.output
        return next((u for u in output.units if u.index == index), None) if output else None

    def labels_of(self, render: Render) -> list[dict]:
        """The model's top classes on a render's image, with names and class pages where rendered."""
        return [{"index": i, "probability": p, "name": self.class_name(i), "unit": self.class_unit(i)}
                for i, p in render.labels]

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
    def concepts_path(self) -> str:
        return f"{self.dir}/concepts.html"

    @property
    def dissected(self) -> bool:
        return any(layer.concepts is not None for layer in self.layers)

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
            "settings": common_settings(r.settings for r in self.renders),
            "layers": sum(layer.rendered for layer in self.layers),
        }

    def samples(self, count: int = 8) -> list[UnitView]:
        """A few images for the home page: one per layer, deepest layers first."""
        firsts = [layer.ok_units[0] for layer in reversed(self.layers) if layer.ok_units]
        return firsts[:count]




@dataclass
class PhotoView:
    """A real photo and what every rendered layer makes of it (its caricatures)."""
    model: ModelView
    digest: str
    name: str
    image: str                   # site path of the published photo
    source: Path                 # the photo in the cache
    renders: list[Render] = field(default_factory=list)   # one caricature per layer, in layer order

    @property
    def path(self) -> str:
        return f"{self.model.dir}/photos/{safe_name(self.digest)}.html"
