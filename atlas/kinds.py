"""Objective kinds: one registry entry per way of looking at a unit.

A `Kind` says everything the rest of atlas needs to know about an objective:
its name (stored in every unit and cache key), how to build its score for a
batch, which layer layouts it applies to, whether it is a class objective, how
pages label it and where the site shows it. Code elsewhere asks the registry
(`kind(name)`) instead of comparing objective names, so adding an objective is
one `register(Kind(...))` here plus its test.

Builders import torch lazily: this module is read by the site, which must not
need torch to write pages.

A builder gets the batch's rows (one `Unit` per image view, so per-row
parameters line up with the batch) and a `Context` (the model, the device, and
resources some objectives need, such as the photos caricatures imitate), and
returns an `optvis.objectives.Objective`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from .errors import AtlasError

if TYPE_CHECKING:
    from .optvis.objectives import Objective
    from .units import Unit

SPATIAL = frozenset({"nchw", "nhwc", "tokens"})
FLAT = frozenset({"flat"})  # layout names: the flat one alone (class logit layers)
EVERY_LAYOUT = SPATIAL | FLAT


@dataclass
class Context:
    """What builders may need beyond the units: the model and where it runs."""
    model: Any                                  # atlas.models.Model
    device: Any = "cpu"                         # torch.device
    precision: str = "fp32"
    photos: Mapping[str, Any] = field(default_factory=dict)   # photo digest -> image [3, H, W] in [0, 1]
    memo: dict = field(default_factory=dict)    # builders' per-batch scratch (targets computed once)


@dataclass(frozen=True)
class Kind:
    name: str
    label: str                                  # how pages name it ("class logit")
    build: Callable[[Sequence["Unit"], Context], "Objective"]
    layouts: frozenset[str] = EVERY_LAYOUT      # layer layouts (layouts.Layout.kind) it applies to
    is_class: bool = False                      # views a class logit layer; the render reports its probability
    plain: bool = False                         # a unit page's main render (channel, logit)
    whole_layer: bool = False                   # the index is ignored: one image per layer (DeepDream)
    page: str = "unit"                          # "unit": the (layer, index) page; "layer": the layer page;
                                                # "own": a page of its own; "photo": the photo's caricature page
    params: tuple[str, ...] = ()                # parameters every unit of this kind must carry
    batch_param: str | None = None              # units batch together only when this parameter is equal
    across_layers: bool = False                 # a batch may mix layers (one photo's caricatures)
    title: Callable[["Unit"], str] | None = None   # a unit's label, where `layer[index] kind` does not fit


KINDS: dict[str, Kind] = {}


def register(entry: Kind) -> Kind:
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


# --- builders -------------------------------------------------------------------

def _index(rows):
    import torch
    return torch.tensor([u.index for u in rows])


def _per_row(name: str):
    """The builder of an objective that takes the batch's layer and one index per
    row: `optvis.objectives.<name>(layer, indices)`."""
    def build(rows, ctx):
        from .optvis import objectives
        return getattr(objectives, name)(rows[0].layer, _index(rows))
    return build


def _deepdream(rows, ctx):
    from .optvis import objectives
    return objectives.deepdream(rows[0].layer)


def _direction(rows, ctx):
    import torch
    from .optvis import objectives
    weights = torch.tensor([u.param("weights") for u in rows], dtype=torch.float32)
    return objectives.direction(rows[0].layer, weights)


def _caricature(rows, ctx):
    from .caricatures import caricature_objective
    return caricature_objective(rows, ctx)


register(Kind("channel", "channel", _per_row("channel"), plain=True))
register(Kind("neuron", "neuron", _per_row("neuron"), layouts=SPATIAL))
register(Kind("logit", "class logit", _per_row("logit"), layouts=FLAT, is_class=True, plain=True))
register(Kind("prob", "class probability", _per_row("class_probability"), layouts=FLAT, is_class=True))
register(Kind("logsoftmax", "class log-probability", _per_row("class_log_probability"), layouts=FLAT, is_class=True))
register(Kind("logodds", "class log-odds", _per_row("class_log_odds"), layouts=FLAT, is_class=True))
register(Kind("deepdream", "DeepDream", _deepdream, layouts=SPATIAL, whole_layer=True, page="layer"))
register(Kind("direction", "direction", _direction, page="own", params=("seed", "weights"),
              title=lambda u: f"{u.layer} direction {u.index}"))
register(Kind("caricature", "caricature", _caricature, layouts=SPATIAL, page="photo",
              params=("photo", "power"), batch_param="photo", across_layers=True,
              title=lambda u: f"{u.layer} caricature of {str(u.param('photo'))[:8]}"))


# --- parameters -------------------------------------------------------------------

def random_direction(channels: int, seed: int) -> tuple[float, ...]:
    """A unit vector in a layer's channel space, positive and negative weights alike,
    a function of `seed` alone (rounded so it stores and hashes the same everywhere)."""
    import torch
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(channels, generator=generator, dtype=torch.float64)
    vector = vector / vector.norm()
    return tuple(round(float(v), 6) for v in vector)


def direction_seed(layer: str, number: int, seed: int = 0) -> int:
    """The seed of a layer's `number`-th random direction."""
    return zlib.crc32(f"direction|{layer}|{number}|{seed}".encode())
