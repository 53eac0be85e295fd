"""What an objective's builder may need beyond the units: the model, how it runs, photos."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass
class Context:
    model: Any                                  # atlas.model.classifier.Model
    runtime: Any                                # atlas.model.runtime.Runtime
    photos: Mapping[str, Any] = field(default_factory=dict)   # photo digest -> image [3, H, W] in [0, 1]
    memo: dict = field(default_factory=dict)    # builders' per-batch scratch (targets computed once)

    @property
    def device(self):
        return self.runtime.device
