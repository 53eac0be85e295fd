"""Page data: what a page shows beyond the view records, computed once per page.

The objective curve as SVG points, a model's usual settings, the reference
tables, the class index, and how a render compares with natural examples.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import TYPE_CHECKING

from ..record import number
from ..reference import REFERENCE_CHANNELS, REFERENCE_CLASSES, reference_channel_label, reference_channel_layer

if TYPE_CHECKING:
    from .views import LayerView, ModelView, Render

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


def common_settings(renders: list[Render]) -> dict:
    """The settings most renders of a model used (a build normally uses one set)."""
    counts = Counter(tuple(sorted(r.settings.items())) for r in renders if r.settings)
    return dict(counts.most_common(1)[0][0]) if counts else {}


def results_tables(model: ModelView) -> dict:
    """The two reference tables. Each cell holds its unit, or says why it has none:
    `absent` when this model cannot render it at all, else the build command does."""
    def cell(layer: LayerView | None, index: int, what: str, **fields) -> dict:
        unit = next((u for u in layer.units if u.index == index), None) if layer else None
        absent = None
        if layer is None:
            absent = f"{model.name} has no layer {what}"
        elif layer.channels is not None and index >= layer.channels:
            absent = f"{layer.name} has only {layer.channels} {'classes' if layer.is_output else 'channels'}"
        return {**fields, "index": index, "unit": unit, "ok": bool(unit and unit.main.ok), "absent": absent}

    channels = [cell(model.layer(reference_channel_layer(n)), k, reference_channel_layer(n),
                     label=reference_channel_label(n, k))
                for n, k in REFERENCE_CHANNELS]
    classes = [cell(model.output, i, "for class logits", name=name) for i, name in REFERENCE_CLASSES.items()]
    return {"channels": channels, "classes": classes,
            "command": f"atlas build {model.name} --preset results"}


def class_index(model: ModelView) -> list[dict]:
    """Every class of the output layer, its name, and its unit where rendered."""
    output = model.output
    rendered = {u.index: u for u in output.units}
    count = len(model.class_names) if model.class_names else (output.channels or 0)
    count = max([count, *(i + 1 for i in rendered)])
    names = model.class_names or []
    # Channels (and directions) whose image the model calls this class, most probable first:
    # how a visitor finds the channels that draw "goldfish".
    called: dict[int, list] = {}
    for layer in model.layers:
        if layer.is_output:
            continue
        for unit in layer.units + layer.directions:
            if unit.main.ok and unit.main.labels:
                top, probability = unit.main.labels[0]
                called.setdefault(top, []).append((probability, unit))
    return [{"index": i, "name": str(names[i]) if i < len(names) else f"class {i}",
             "unit": rendered.get(i), "ok": bool(rendered.get(i) and rendered[i].main.ok),
             "called": [unit for _, unit in sorted(called.get(i, []), key=lambda item: -item[0])]}
            for i in range(count)]


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
