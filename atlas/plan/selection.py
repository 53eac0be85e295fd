"""Which units a build covers: layers, channels, classes and their variants.

A `Selection` is what a user asks for; `select_units` turns it into the list of
`Unit`s for one model, checking every name and index against the model's catalog.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import torch

from ..core import kinds
from ..core.errors import AtlasError
from ..core.parse import parse_indices, parse_unit
from ..model.classifier import Model
from .presets import reference_classes, reference_units
from ..core.units import Unit


@dataclass(frozen=True)
class Selection:
    """Which units a build covers; see `atlas build --help` for each field."""
    layers: str | None = None  # comma-separated names or globs; None = every conv layer; "none"
    channels: int | None = None  # the first N channels of each layer; None = all, 0 = none
    classes: str = "all"  # "all", "reference", "none" or indices/ranges like 1,3,10-20
    units: tuple[str, ...] = ()  # extra LAYER:INDEX units, or "reference" for the reference table
    objective: str = "channel"  # channel or neuron, for conv units
    class_objective: str = "logit"  # a class kind (kinds.names(is_class=True)), for class units
    negative: bool = False  # also render each unit's negative
    diversity: int = 1  # > 1: also render that many diverse images of each unit
    directions: int = 0  # also render N random directions (mixes of channels) of each selected layer
    directions_seed: int = 0  # which random directions
    pictures: int = 1  # pictures of each unit, from as many seeds (a set on its page)


def select_units(model: Model, selection: Selection) -> list[Unit]:
    if kinds.kind(selection.objective).name not in kinds.UNIT_KINDS:
        raise AtlasError(f"unit objective must be {', '.join(kinds.UNIT_KINDS)}, not {selection.objective!r}")
    if selection.class_objective not in kinds.CLASS_KINDS:
        raise AtlasError(f"class objective must be {', '.join(kinds.CLASS_KINDS)}, "
                         f"not {selection.class_objective!r}")
    pairs: list[tuple[str, int]] = []
    layers = model.select_layers(selection.layers) if selection.layers != "none" else []
    if selection.channels != 0:
        for layer in layers:
            kinds.check_layout(selection.objective, layer.name, layer.layout.kind)
            pairs += [(layer.name, i) for i in range(min(layer.channels, selection.channels or layer.channels))]
    for spec in selection.units:
        pairs += reference_units(model) if spec == "reference" else [checked_unit(model, spec)]

    classes = _classes(model, selection.classes)
    base = [Unit(layer, i, selection.objective) for layer, i in dict.fromkeys(pairs)]
    base += [Unit(model.output_layer, i, selection.class_objective) for i in classes]
    directions = [Unit(layer.name, n, "direction", params=_direction(layer, n, selection.directions_seed))
                  for layer in layers for n in range(selection.directions)]
    if not base and not directions:
        raise AtlasError("nothing selected: give --layers, --units or --classes")
    if selection.pictures < 1:
        raise AtlasError(f"--pictures must be at least 1, got {selection.pictures}")
    # A unit's pictures next to it, so they render in one batch.
    units = [picture for u in base for picture in [u] + [replace(u, picture=k) for k in range(1, selection.pictures)]]
    if selection.negative:
        units += [Unit(u.layer, u.index, u.objective, negative=True) for u in base]
    if selection.diversity > 1:
        units += [Unit(u.layer, u.index, u.objective, diversity=selection.diversity) for u in base]
    return units + directions


def _direction(layer, number: int, seed: int) -> dict:
    """The parameters of a layer's `number`-th random direction: its seed and its weights."""
    drawn = direction_seed(layer.name, number, seed)
    return {"seed": drawn, "weights": random_direction(layer.channels, drawn)}


def random_direction(channels: int, seed: int) -> tuple[float, ...]:
    """A unit vector in a layer's channel space, positive and negative weights alike,
    a function of `seed` alone (rounded so it stores and hashes the same everywhere)."""
    generator = torch.Generator().manual_seed(seed)
    vector = torch.randn(channels, generator=generator, dtype=torch.float64)
    vector = vector / vector.norm()
    return tuple(round(float(v), 6) for v in vector)


def direction_seed(layer: str, number: int, seed: int = 0) -> int:
    """The seed of a layer's `number`-th random direction."""
    return zlib.crc32(f"direction|{layer}|{number}|{seed}".encode())


def checked_unit(model: Model, text: str) -> tuple[str, int]:
    """A LAYER:INDEX unit the model has."""
    name, index = parse_unit(text)
    layer = model.layer(name)
    if index >= layer.channels:
        raise AtlasError(f"unit {text!r} is out of range: {layer.name} has {layer.channels} channels")
    return layer.name, index


def _classes(model: Model, spec: str) -> list[int]:
    outputs = model.layer(model.output_layer).channels
    spec = (spec or "none").strip().lower()
    if spec == "none":
        return []
    if spec == "all":
        return list(range(outputs))
    if spec == "reference":
        return reference_classes(model)
    return parse_indices(spec, outputs, "class")


