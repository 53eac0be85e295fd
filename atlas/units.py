"""Units: what one feature visualization optimizes, and how users name them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .errors import AtlasError

# channel: mean of one channel's activation map; neuron: its centre position;
# logit: one pre-softmax output; prob: one softmax output;
# deepdream: mean of squared activations of a whole layer (index is ignored).
OBJECTIVES = ("channel", "neuron", "logit", "prob", "deepdream")
CLASS_OBJECTIVES = ("logit", "prob")


@dataclass(frozen=True, order=True)
class Unit:
    """One render job: a unit of a layer and the objective that views it.

    ``negative`` minimizes instead of maximizing; ``diversity`` > 1 renders that
    many images of the unit at once, pushed apart from each other.
    """

    layer: str
    index: int
    objective: str = "channel"
    negative: bool = False
    diversity: int = 1

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise AtlasError(f"unknown objective {self.objective!r}; choose from {', '.join(OBJECTIVES)}")
        if self.diversity < 1:
            raise AtlasError(f"diversity must be at least 1, got {self.diversity}")

    @property
    def label(self) -> str:
        """`layer[index]` as in the reference tables, with its variant."""
        text = self.layer if self.objective == "deepdream" else f"{self.layer}[{self.index}]"
        if self.objective in ("neuron", "prob", "deepdream"):
            text += f" {self.objective}"
        if self.negative:
            text = "−" + text
        if self.diversity > 1:
            text += f" ×{self.diversity}"
        return text

    @property
    def variant(self) -> str:
        """How this job views its unit, e.g. 'channel', 'negative channel', 'channel ×4'."""
        text = ("negative " if self.negative else "") + self.objective
        return text + (f" ×{self.diversity}" if self.diversity > 1 else "")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Unit":
        return cls(**data)
