"""What an objective's builder may need beyond the units: the model, where it runs, photos."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class Context:
    model: Any                                  # atlas.models.Model
    device: Any = "cpu"                         # torch.device
    precision: str = "fp32"
    photos: Mapping[str, Any] = field(default_factory=dict)   # photo digest -> image [3, H, W] in [0, 1]
    memo: dict = field(default_factory=dict)    # builders' per-batch scratch (targets computed once)
