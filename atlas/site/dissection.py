"""Network dissection on pages: what concept each unit detects, per layer and per model.

The build stores one merged dissection per layer (`atlas.store.dissection`): a
threshold per unit and its IoU with every concept, on the whole set and on each half
of the photos. This module turns that into what pages list: a unit's best concept (a
*detector* when it is confirmed: its best on both halves with IoU at least 0.04 on
each, Bau et al.'s bar; `atlas.dissection.confirm` says why) and its best per
category; a layer's detectors by category and the units per concept; a model's unique
detectors per category per layer (Bau et al.'s summary plot); and the concept index.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..store.dissection import DETECTOR_IOU, MIN_IMAGES, Finding, LayerDissection, dead_units

if TYPE_CHECKING:
    from .views import LayerView, ModelView, UnitView

# How pages name each kind of concept dataset (atlas.concepts readers' `kind`).
KIND_LABELS = {"broden": "Broden", "folder": "labelled", "colors": "colour"}


@dataclass(frozen=True)
class Match:
    """A unit's IoU with one concept (on the whole set)."""
    concept: str
    category: str
    iou: float


@dataclass
class UnitConcepts:
    """What a unit page shows: its concept (confirmed, else its whole-set best), how each
    half of the photos scored it, and its best in each category."""
    best: Match
    per_category: list[Match]
    threshold: float
    layer: "LayerConcepts"
    finding: Finding

    @property
    def detector(self) -> bool:
        return self.finding.confirmed


@dataclass
class LayerConcepts:
    """One layer's dissection as its pages show it."""
    result: LayerDissection

    @property
    def kind(self) -> str:
        return KIND_LABELS.get(self.result.setup.kind, self.result.setup.kind)

    @property
    def dataset(self) -> str:
        import posixpath
        return posixpath.basename(self.result.setup.dataset.replace("\\", "/").rstrip("/")) or self.result.setup.dataset

    @property
    def enough_images(self) -> bool:
        return self.result.enough_images

    @property
    def min_images(self) -> int:
        return MIN_IMAGES

    @property
    def dead(self) -> list[int]:
        return dead_units(self.result)

    def unit(self, index: int) -> UnitConcepts | None:
        result = self.result
        if not 0 <= index < result.units:
            return None
        finding = result.finding(index)
        k, score = finding.concept, finding.iou
        per = []
        for c, category in enumerate(result.categories):
            if c not in result.category_of:
                continue
            best, value = result.best(index, c)
            per.append(Match(result.names[best], category, value))
        per.sort(key=lambda m: -m.iou)
        return UnitConcepts(Match(result.names[k], result.categories[result.category_of[k]], score), per,
                            float(result.thresholds[index]), self, finding)

    def detectors(self) -> list[tuple[int, Match]]:
        """(unit, its concept) for every unit whose concept is confirmed, best IoU first."""
        found = []
        for u in range(self.result.units):
            concepts = self.unit(u)
            if concepts.detector:
                found.append((u, concepts.best))
        return sorted(found, key=lambda item: -item[1].iou)

    def by_category(self) -> list[dict]:
        """Per category: detector units and the distinct concepts they detect."""
        rows = {category: {"category": category, "units": 0, "concepts": set()} for category in self.result.categories
                if self.result.categories.index(category) in self.result.category_of}
        for _, match in self.detectors():
            rows[match.category]["units"] += 1
            rows[match.category]["concepts"].add(match.concept)
        return [{**row, "unique": len(row["concepts"]), "concepts": sorted(row["concepts"])} for row in rows.values()]

    def by_concept(self) -> list[dict]:
        """Each detected concept with its detector units, most units first."""
        groups: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for unit, match in self.detectors():
            groups.setdefault((match.concept, match.category), []).append((unit, match.iou))
        return sorted(({"concept": c, "category": cat, "units": units} for (c, cat), units in groups.items()),
                      key=lambda row: (-len(row["units"]), row["concept"]))


@dataclass
class ConceptEntry:
    """One concept of the concept index: its detector units over every dissected layer."""
    name: str
    category: str
    units: list[tuple["LayerView", int, float, "UnitView | None"]] = field(default_factory=list)


def attach(models: list["ModelView"], results: dict) -> None:
    """Give every layer its dissection, from `atlas.store.dissection.scan`'s results."""
    for model in models:
        for layer in model.layers:
            result = results.get((model.name, model.fingerprint, layer.name))
            if result is not None:
                layer.concepts = LayerConcepts(result)


def summary(model: "ModelView") -> dict | None:
    """Bau et al.'s per-layer plot as a table: unique detectors per category for each dissected layer."""
    layers = [layer for layer in model.layers if layer.concepts is not None]
    if not layers:
        return None
    categories = sorted({row["category"] for layer in layers for row in layer.concepts.by_category()},
                        key=lambda c: layers[0].concepts.result.categories.index(c)
                        if c in layers[0].concepts.result.categories else 99)
    rows = []
    for layer in layers:
        found = {row["category"]: row for row in layer.concepts.by_category()}
        rows.append({"layer": layer, "units": layer.concepts.result.units,
                     "detectors": len(layer.concepts.detectors()),
                     "unique": [found.get(c, {"unique": 0})["unique"] for c in categories]})
    peak = max([max(r["unique"], default=0) for r in rows] + [1])
    first = layers[0].concepts
    return {"categories": categories, "rows": rows, "peak": peak, "dataset": first.dataset,
            "kind": first.kind, "images": first.result.images, "enough_images": first.enough_images,
            "min_images": MIN_IMAGES,
            "quantile": first.result.setup.quantile, "iou": DETECTOR_IOU}


def concept_index(model: "ModelView") -> list[ConceptEntry]:
    """Every concept some unit detects, with those units, most units first."""
    entries: dict[tuple[str, str], ConceptEntry] = {}
    for layer in model.layers:
        if layer.concepts is None:
            continue
        pages = {u.index: u for u in layer.units}
        for unit, match in layer.concepts.detectors():
            entry = entries.setdefault((match.concept, match.category), ConceptEntry(match.concept, match.category))
            entry.units.append((layer, unit, match.iou, pages.get(unit)))
    for entry in entries.values():
        entry.units.sort(key=lambda item: -item[2])
    return sorted(entries.values(), key=lambda e: (-len(e.units), e.name))


def bar_width(value: int, peak: int, width: int = 120) -> int:
    return int(round(width * value / peak)) if peak else 0


def iou_text(value: float) -> str:
    return f"{value:.2f}" if value >= 0.01 or value == 0 else f"{value:.3f}"

