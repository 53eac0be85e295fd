"""A classifier ready for atlas: the `Model` record and its `Layer`s.

A `Model` bundles what the rest of atlas needs to know about a classifier: the
`nn.Module` (eval mode, frozen, no in-place activations), its `ModelSpec`
(preprocessing, class names, input rule; `atlas.model.spec`), a fingerprint of
its weights for the cache key, and the layers a user can choose from, each with
its layout (`atlas.core.layouts`) and whether a build selects it by default.
`atlas.model.loading` makes one from a name; `atlas.model.catalog` reads the layers.
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import dataclass

import torch
from torch import nn

from ..core import layouts
from ..core.errors import AtlasError
from ..core.layouts import Layout
from .spec import ModelSpec, model_input

# The model's full output, for architectures whose logits come from no single layer.
OUTPUT = "output"


@dataclass(frozen=True)
class Layer:
    name: str
    type: str
    channels: int
    kind: str  # "conv", "linear" (a flat Linear output) or "other"
    position: int  # order in which the forward pass finishes this layer
    layout: Layout = layouts.NCHW
    default: bool = False  # selected when a build names no layers

    def as_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "channels": self.channels, "kind": self.kind,
                "layout": str(self.layout), "default": self.default}


@dataclass(frozen=True)
class Model:
    name: str
    module: nn.Module
    spec: ModelSpec
    weights: str  # human label: a torchvision weights id, a file name, or "random"
    fingerprint: str  # hash of the weights' content
    layers: tuple[Layer, ...]
    output_layer: str
    default_why: str = ""  # why the default layers are the default, for `atlas layers`

    @property
    def input_size(self) -> int:
        """Side at which natural images are shown to the model: its evaluation crop."""
        return self.spec.crop_size

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.spec.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.spec.std

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.spec.class_names

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        close = difflib.get_close_matches(name, [l.name for l in self.layers], n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; run `atlas layers {self.name}` to list them"
        raise AtlasError(f"{self.name} has no layer {name!r}{hint}")

    def select_layers(self, patterns: str | None) -> list[Layer]:
        """Layers matching comma-separated names or globs; default: the family's
        default layers (every conv layer of a convnet; a transformer's blocks)."""
        if not patterns:
            return [l for l in self.layers if l.default]
        chosen: list[Layer] = []
        for pattern in [p.strip() for p in patterns.split(",") if p.strip()]:
            if any(c in pattern for c in "*?["):
                matched = [l for l in self.layers if fnmatch.fnmatchcase(l.name, pattern)]
                if not matched:
                    raise AtlasError(f"no layer of {self.name} matches {pattern!r}; run `atlas layers {self.name}`")
            else:
                matched = [self.layer(pattern)]
            chosen += [l for l in matched if l not in chosen]
        return sorted(chosen, key=lambda l: l.position)

    @property
    def slug(self) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.name)
        return f"{safe}-{self.fingerprint[:10]}"

    def card(self) -> dict:
        """What the site needs to know about this model, stored beside the cache."""
        return {
            "slug": self.slug, "name": self.name, "weights": self.weights,
            "fingerprint": self.fingerprint, **self.spec.card(),
            "layers": [l.as_dict() for l in self.layers], "output_layer": self.output_layer,
            "class_names": list(self.class_names) if self.class_names else None,
        }


def to_device(model: Model, device: torch.device) -> Model:
    """Move the model's weights to `device` in channels-last layout (faster convolutions)."""
    model.module.to(device=device, memory_format=torch.channels_last)
    return model


def normalize(model: Model, images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], [B,3,H,W], as the model takes them: resampled to a side
    its input rule allows (a no-op where it already does), then normalized."""
    return model_input(model.spec, images)
