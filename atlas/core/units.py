"""Units: what one feature visualization optimizes, and how users name them."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import kinds
from .errors import AtlasError

# Every objective is an entry of the registry in kinds.py; the order pages list a unit's renders in.
OBJECTIVES = tuple(kinds.KINDS)


def freeze(value):
    """A parameter value as a hashable, JSON-round-trippable one: lists become tuples."""
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    raise AtlasError(f"unit parameter values must be numbers, text or lists of them, not {type(value).__name__}")


@dataclass(frozen=True, order=True)
class Unit:
    """One render job: a unit of a layer and the objective that views it.

    ``negative`` minimizes instead of maximizing; ``diversity`` > 1 renders that
    many images of the unit at once, pushed apart from each other. ``picture`` > 0
    is another picture of the same unit from another seed, cached on its own: a
    unit page shows its pictures as a set (`--pictures N`). ``params``
    are the objective's own frozen parameters (a direction's weights, the photo a
    caricature imitates), sorted (name, value) pairs; they are part of the cache
    key, and a unit without any hashes exactly as before they existed.
    """

    layer: str
    index: int
    objective: str = "channel"
    negative: bool = False
    diversity: int = 1
    params: tuple = field(default=(), compare=True)
    picture: int = 0

    def __post_init__(self):
        entry = kinds.kind(self.objective)
        if self.diversity < 1:
            raise AtlasError(f"diversity must be at least 1, got {self.diversity}")
        if self.picture < 0:
            raise AtlasError(f"a picture number is at least 0, got {self.picture}")
        given = self.params.items() if isinstance(self.params, dict) else self.params
        params = tuple(sorted((str(name), freeze(value)) for name, value in given))
        missing = [p for p in entry.params if p not in dict(params)]
        if missing:
            raise AtlasError(f"objective {self.objective!r} needs parameters {', '.join(missing)}")
        object.__setattr__(self, "params", params)

    @property
    def kind(self) -> kinds.Kind:
        return kinds.kind(self.objective)

    def param(self, name: str, default=None):
        return dict(self.params).get(name, default)

    @property
    def label(self) -> str:
        """`layer[index]` as in the reference tables, with its variant."""
        entry = self.kind
        if entry.title is not None:
            text = entry.title(self)
        else:
            text = self.layer if entry.whole_layer else f"{self.layer}[{self.index}]"
            if not entry.plain:
                text += f" {self.objective}"
        if self.negative:
            text = "−" + text
        if self.diversity > 1:
            text += f" ×{self.diversity}"
        if self.picture:
            text += f" #{self.picture + 1}"
        return text

    @property
    def variant(self) -> str:
        """How this job views its unit, e.g. 'channel', 'negative channel', 'channel ×4', 'channel #2'."""
        text = ("negative " if self.negative else "") + self.objective
        return text + (f" ×{self.diversity}" if self.diversity > 1 else "") + (f" #{self.picture + 1}" if self.picture else "")

    def as_dict(self) -> dict:
        data = {"layer": self.layer, "index": self.index, "objective": self.objective,
                "negative": self.negative, "diversity": self.diversity}
        if self.params:   # absent when empty: plain units keep the cache keys they always had
            data["params"] = {name: value for name, value in self.params}
        if self.picture:  # likewise: the first picture keys as every unit did before sets existed
            data["picture"] = self.picture
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Unit":
        return cls(**data)
