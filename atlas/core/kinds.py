"""Objective kinds: one registry entry per way of looking at a unit.

A `Kind` says everything the rest of atlas needs to know about an objective
apart from its arithmetic: its name (stored in every unit and cache key), which
layer layouts it applies to, whether it is a class objective, how pages label it
and which page shows it. Code elsewhere asks the registry (`kind(name)`) instead
of comparing objective names.

This module is a leaf: it imports neither torch nor the engine, so the site can
read it. The arithmetic lives in the engine (`atlas.engine.builders`), which
registers one builder per kind with `@builds(name)`; a builder for a name that
has no entry here fails when the engine is imported, and a test checks that
every entry has its builder. Adding an objective is one `Kind(...)` here, one
builder there, and its test.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable

from .errors import AtlasError
from .layouts import EVERY, SPATIAL, Arrangement

FLAT = frozenset({Arrangement.FLAT})  # class logit layers alone


class Page(StrEnum):
    """Where the site shows a kind's renders."""
    UNIT = "unit"     # on the (layer, index) page, beside the unit's other renders
    LAYER = "layer"   # on the layer page: one image for the whole layer (DeepDream)
    OWN = "own"       # on a page of its own next to the layer's channel pages (a direction)
    PHOTO = "photo"   # on the page of the photo it imitates (a caricature)
    ATLAS = "atlas"   # an icon of the layer's activation atlas, on the atlas page
    FEATURE = "feature"   # a dictionary feature's picture, on the feature's page


@dataclass(frozen=True)
class Kind:
    name: str
    label: str                                  # how pages name it ("class logit")
    layouts: frozenset[Arrangement] = EVERY     # layer layouts it applies to
    is_class: bool = False                      # views a class logit layer; the render reports its probability
    plain: bool = False                         # a unit page's main render (channel, logit)
    whole_layer: bool = False                   # the index is ignored: one image per layer (DeepDream)
    page: Page = Page.UNIT
    params: tuple[str, ...] = ()                # parameters every unit of this kind must carry
    batch_param: str | None = None              # units batch together only when this parameter is equal
    across_layers: bool = False                 # a batch may mix layers (one photo's caricatures)
    title: Callable[[Any], str] | None = None   # a unit's label, where `layer[index] kind` does not fit


KINDS: dict[str, Kind] = {}


def register(entry: Kind) -> Kind:
    """Add a kind; a second entry under one name is a mistake, not an update."""
    if entry.name in KINDS:
        raise ValueError(f"objective kind {entry.name!r} is registered already")
    KINDS[entry.name] = entry
    return entry


def kind(name: str) -> Kind:
    """The registry entry for `name`; an unknown name is a one-line error listing the known ones."""
    try:
        return KINDS[name]
    except KeyError:
        raise AtlasError(f"unknown objective {name!r}; choose from {', '.join(KINDS)}") from None


def names(**wanted) -> tuple[str, ...]:
    """Names of the kinds whose fields equal `wanted`, e.g. names(is_class=True)."""
    return tuple(n for n, k in KINDS.items() if all(getattr(k, f) == v for f, v in wanted.items()))


def check_layout(name: str, layer: str, layout: str) -> None:
    entry = kind(name)
    if layout not in entry.layouts:
        raise AtlasError(f"objective {name!r} does not apply to {layer} ({layout} layout); "
                         f"it takes {', '.join(sorted(entry.layouts))} layers")


register(Kind("channel", "channel", plain=True))
register(Kind("neuron", "neuron", layouts=SPATIAL))
register(Kind("logit", "class logit", layouts=FLAT, is_class=True, plain=True))
register(Kind("prob", "class probability", layouts=FLAT, is_class=True))
register(Kind("logsoftmax", "class log-probability", layouts=FLAT, is_class=True))
register(Kind("logodds", "class log-odds", layouts=FLAT, is_class=True))
register(Kind("deepdream", "DeepDream", layouts=SPATIAL, whole_layer=True, page=Page.LAYER))
register(Kind("direction", "direction", page=Page.OWN, params=("seed", "weights"),
              title=lambda u: f"{u.layer} direction {u.index}"))
register(Kind("caricature", "caricature", layouts=SPATIAL, page=Page.PHOTO,
              params=("photo", "power"), batch_param="photo", across_layers=True,
              title=lambda u: f"{u.layer} caricature of {str(u.param('photo'))[:8]}"))
# An activation-atlas icon: a direction at the centre position, the mean of one grid cell's
# activation vectors. The index is always 0: the key follows the direction's values, so an
# icon renders once whatever grid (or atlas) needs it.
register(Kind("icon", "atlas icon", layouts=SPATIAL, page=Page.ATLAS, params=("direction", "power"),
              title=lambda u: f"{u.layer} atlas icon"))
# A dictionary feature (atlas.dictionary): the direction of its decoder atom, every position
# of the map compared with it as an icon's centre is. The index is the feature's; the key
# follows the direction's values, so a dictionary learned again renders its features anew.
register(Kind("feature", "dictionary feature", layouts=SPATIAL, page=Page.FEATURE, params=("direction", "power"),
              title=lambda u: f"{u.layer} feature {u.index}"))

# The objectives a user picks by name: for channels, the kinds that need no parameters; for classes, the class kinds.
UNIT_KINDS = tuple(n for n, k in KINDS.items() if not k.is_class and not k.params)
CLASS_KINDS = names(is_class=True)


# --- builders: registered by the engine ----------------------------------------------

BUILDERS: dict[str, Callable] = {}


def builds(name: str):
    """Decorator the engine registers a kind's builder with: `(rows, context) -> Objective`,
    where `rows` holds one `Unit` per image view of the batch."""
    kind(name)   # a builder for an unknown kind is a mistake: fail at import, not at render time

    def register_builder(function):
        if name in BUILDERS:
            raise ValueError(f"objective kind {name!r} has a builder already")
        BUILDERS[name] = function
        return function
    return register_builder


def builder(name: str) -> Callable:
    try:
        return BUILDERS[name]
    except KeyError:
        raise AtlasError(f"objective {name!r} has no builder: import atlas.engine.builders") from None
