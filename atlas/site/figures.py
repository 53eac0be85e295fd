"""Figures a page shows about one record: the objective curve, ratios, common settings.

Pure functions of numbers and settings; the view records (`views`) and the
reader (`read`) call them, and they import nothing of the site.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable, Mapping

from ..core.entry import number

CURVE_W, CURVE_H, CURVE_POINTS = 360, 120, 240


def curve_plot(values: list) -> dict | None:
    """Polyline points for the objective curve, drawn by the template as inline SVG."""
    points = [(i, v) for i, v in enumerate(map(number, values)) if v is not None]
    if len(points) < 2:
        return None
    stride = max(1, math.ceil(len(points) / CURVE_POINTS))
    shown = points[::stride] + ([points[-1]] if (len(points) - 1) % stride else [])
    lo, hi = min(v for _, v in points), max(v for _, v in points)
    span, last_step = (hi - lo) or 1.0, points[-1][0] or 1
    xy = " ".join(f"{i / last_step * CURVE_W:.1f},{(hi - v) / span * CURVE_H:.1f}" for i, v in shown)
    return {"points": xy, "min": lo, "max": hi, "first": points[0][1], "last": points[-1][1],
            "steps": len(values), "width": CURVE_W, "height": CURVE_H}


def common_settings(settings: Iterable[Mapping]) -> dict:
    """The settings most renders of a model used (a build normally uses one set)."""
    counts = Counter(tuple(sorted(s.items())) for s in settings if s)
    return dict(counts.most_common(1)[0][0]) if counts else {}


def compare_to_examples(final: float | None, best: float | None, render_size: int | None = None,
                        examples_size: int | None = None) -> dict | None:
    """How far beyond natural images the optimization went: the visualization's final
    objective over the best example's. Only a positive best gives a ratio: at or below
    zero no natural image excites the unit and a ratio would be meaningless (or flip sign)."""
    if final is None or best is None:
        return None
    note = (f"visualization at {render_size} px, examples at {examples_size} px"
            if render_size and examples_size and render_size != examples_size else "")
    if best > 1e-9:
        ratio = final / best
        return {"ratio": ratio, "ratio_text": f"{format_ratio(ratio)}×", "final": final, "best": best,
                "note": note, "text": f"{format_ratio(ratio)}× the best natural example"}
    return {"ratio": None, "ratio_text": "", "final": final, "best": best, "note": note,
            "text": "no ratio: the best natural example is not above zero"}


def format_ratio(ratio: float) -> str:
    size = abs(ratio)
    text = f"{ratio:,.0f}" if size >= 10 else f"{ratio:.1f}" if size >= 1 else f"{ratio:.2f}"
    return text.replace("-", "−")
