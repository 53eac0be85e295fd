"""Named starting points for a build; any option the user gives overrides them.

full     every channel of every conv layer and every class, 224 px, 256 steps for
         channels and 512 for classes
results  exactly the units of the reference tables, 224 px, 256 / 512 steps
quick    a few channels per layer plus the reference classes, small and short:
         a CPU renders it in minutes

Each takes the recipe measured best at its number of steps: the default (closeup)
at 512, zoom at 128, whose class units take a larger step (BENCHMARKS.md, issues 14
and 28; closeup's channels were judged at 512 steps only, so quick keeps zoom's).
A channel's picture predicts real photos as well at 256 steps as at 512, a class
image keeps gaining to 512: `steps` is the class units', `channel_steps` every
other unit's (BENCHMARKS.md, "Steps per kind"). The reference tables are the
project's seed document's (`atlas.core.reference`).
"""

from __future__ import annotations

from ..core.errors import AtlasError
from ..model.classifier import Model
from ..core.reference import REFERENCE_CHANNELS, REFERENCE_CLASSES, reference_channel_layer

PRESETS: dict[str, dict] = {
    "full": {"size": 224, "steps": 512, "channel_steps": 256, "channels": None, "classes": "all"},
    "results": {"size": 224, "steps": 512, "channel_steps": 256, "layers": "none", "classes": "reference",
                "units": "reference"},
    "quick": {"size": 128, "steps": 128, "recipe": "zoom", "channels": 3, "classes": "reference"},
}


def preset(name: str) -> dict:
    try:
        return PRESETS[name]
    except KeyError:
        raise AtlasError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}") from None


def reference_units(model: Model) -> list[tuple[str, int]]:
    """The reference channel table as (layer, index) pairs this model has."""
    names = {l.name: l for l in model.layers}
    return [(reference_channel_layer(n), k) for n, k in REFERENCE_CHANNELS
            if reference_channel_layer(n) in names and k < names[reference_channel_layer(n)].channels]


def reference_classes(model: Model) -> list[int]:
    outputs = model.layer(model.output_layer).channels
    return [i for i in REFERENCE_CLASSES if i < outputs]
