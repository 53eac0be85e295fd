"""Connections on pages: each unit's strongest inputs and outputs among rendered units.

The build caches the expanded weights of every pair of consecutive rendered
layers (`atlas.circuits`): a norm and a sum per (target, source) channel pair and
the spatial pattern around the centre. This module ranks them for one unit, the
way a page lists them: strongest first by norm, among the channels of the other
layer that have a page, and says how many stronger channels have none (a build
that rendered a few channels per layer still lets a visitor walk the network).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .views import LayerView, UnitView

SHOWN = 6          # connections listed per direction
HEAT_PX = 6        # CSS px per cell of the spatial pattern's heatmap


@dataclass
class Connection:
    """One link of a unit page's input or output list."""
    index: int                   # channel (or class) of the other layer
    unit: "UnitView | None"      # its page, where rendered
    norm: float                  # L2 norm of the expanded weights
    total: float                 # their sum: > 0 excites, < 0 inhibits
    rank: int                    # 1 = strongest of all the other layer's channels
    heat: list[list[float]] | None = None   # the spatial pattern, rows of values

    @property
    def sign(self) -> str:
        return "excites" if self.total >= 0 else "inhibits"

    @property
    def cells(self) -> dict | None:
        """The heatmap as SVG cells: red excites, blue inhibits, opacity by size."""
        if not self.heat:
            return None
        peak = max((abs(v) for row in self.heat for v in row), default=0.0) or 1.0
        cells = [{"x": x * HEAT_PX, "y": y * HEAT_PX, "fill": "#c0392b" if v >= 0 else "#2e6fba",
                  "opacity": f"{min(1.0, abs(v) / peak):.2f}"}
                 for y, row in enumerate(self.heat) for x, v in enumerate(row)]
        return {"cells": cells, "px": HEAT_PX, "width": len(self.heat[0]) * HEAT_PX,
                "height": len(self.heat) * HEAT_PX, "peak": f"{peak:.3g}"}


@dataclass
class Links:
    """A layer pair's cached weights as one side of a page sees them."""
    other: "LayerView"           # the layer at the other end
    norm: object                 # numpy [target, source]
    total: object
    heat: object                 # numpy [target, source, h, w] (h = 0: no spatial pattern)
    incoming: bool               # True: this layer is the target (the list is of inputs)

    def ranked(self, index: int, count: int = SHOWN) -> list[Connection]:
        """The strongest connections of this layer's channel `index`, rendered units first."""
        import numpy as np

        norms = self.norm[index] if self.incoming else self.norm[:, index]
        totals = self.total[index] if self.incoming else self.total[:, index]
        order = np.argsort(-norms, kind="stable")
        rank = {int(i): r + 1 for r, i in enumerate(order)}
        pages = {u.index: u for u in self.other.units if u.main.ok}
        chosen = [int(i) for i in order if int(i) in pages][:count]
        if not chosen:   # nothing of the other layer rendered: list the strongest channels anyway
            chosen = [int(i) for i in order[:count]]
        return [Connection(index=i, unit=pages.get(i), norm=float(norms[i]), total=float(totals[i]),
                           rank=rank[i], heat=self._heat(index, i)) for i in chosen]

    def overall(self, index: int, count: int = SHOWN) -> list[Connection]:
        """The strongest connections among all the other layer's channels, rendered or not
        (what a page adds when only some of them were rendered)."""
        import numpy as np

        norms = self.norm[index] if self.incoming else self.norm[:, index]
        totals = self.total[index] if self.incoming else self.total[:, index]
        pages = {u.index: u for u in self.other.units if u.main.ok}
        order = [int(i) for i in np.argsort(-norms, kind="stable")[:count]]
        return [Connection(index=i, unit=pages.get(i), norm=float(norms[i]), total=float(totals[i]), rank=r + 1)
                for r, i in enumerate(order)]

    @property
    def partial(self) -> bool:
        """Whether only some channels of the other layer have pages."""
        return len([u for u in self.other.units if u.main.ok]) < (self.norm.shape[1 if self.incoming else 0])

    def _heat(self, index: int, other: int) -> list[list[float]] | None:
        if self.heat.ndim != 4 or self.heat.shape[2] == 0:
            return None
        pattern = self.heat[index, other] if self.incoming else self.heat[other, index]
        return [[round(float(v), 5) for v in row] for row in pattern]


def attach(models, pairs: dict) -> None:
    """Give every layer its incoming and outgoing links from the cached pairs
    (`atlas.circuits.scan`: (model, fingerprint, source, target) -> Pair)."""
    for model in models:
        for (name, fingerprint, source, target), pair in pairs.items():
            if name != model.name or fingerprint != model.fingerprint:
                continue
            src, dst = model.layer(source), model.layer(target)
            if src is None or dst is None:
                continue
            if pair.skipped:
                src.connections_note = dst.connections_note = pair.skipped
                continue
            dst.inputs = Links(src, pair.norm, pair.total, pair.heat, incoming=True)
            src.outputs = Links(dst, pair.norm, pair.total, pair.heat, incoming=False)
