"""Page data built from the view records: the reference tables and the class index.

Numbers a record shows about itself (curves, ratios, common settings) are
`figures`, which the records import; this module imports the records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.reference import REFERENCE_CHANNELS, REFERENCE_CLASSES, reference_channel_label, reference_channel_layer

if TYPE_CHECKING:
    from .views import LayerView, ModelView


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
