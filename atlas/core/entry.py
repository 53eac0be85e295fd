"""The metadata of one cache entry, as one typed record for its writer and its readers.

`atlas.build.entry_meta` writes it beside an entry's images; the site reads it
back. Both go through `EntryMeta`, so a field renamed or added is renamed or
added in one place. `from_dict` tolerates entries written by older versions (a
field missing, a number stored as a string, a NaN): what cannot be read becomes
the field's empty value rather than an error, because a page with a blank metric
beats a site that fails to build over one old entry.
"""

from __future__ import annotations

import math
from functools import cached_property
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from .units import Unit

# A render whose objective never leaves this band (relative to its size, at least 1) from its
# random start to its last step moved nothing: no image the optimizer found, noise included,
# changes the unit, so its picture shows nothing (issue 35: a dead unit). A live unit's
# objective moves by orders of magnitude more within a few steps.
FLAT_BAND = 1e-4


@dataclass(frozen=True)
class EntryMeta:
    unit: Unit
    status: str = "ok"                        # "ok" or "failed"
    error: str | None = None                  # why it failed
    model: str = ""
    weights: str = ""
    fingerprint: str = ""
    settings: Mapping[str, Any] = field(default_factory=dict)   # Settings.as_dict()
    recipe_version: Any = None
    curve: tuple[float, ...] = ()             # objective per step
    final_objective: float | None = None
    final_objectives: tuple[float, ...] = ()  # one per image (diversity)
    class_probability: float | None = None    # class units only
    # What the model calls the final image: its top classes, (class index, probability),
    # most probable first (empty for entries written before labels were stored).
    labels: tuple[tuple[int, float], ...] = ()
    seconds: float = 0.0
    device: str = ""
    created: str = ""                         # ISO 8601, UTC

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @cached_property
    def flat(self) -> bool:
        """Whether the objective stayed in FLAT_BAND over the whole render (the unit is dead).
        Kept once read: every grid of a site asks it of every tile."""
        return is_flat(self.curve)

    @property
    def size(self) -> int | None:
        """Side of the rendered images in pixels, where the settings say."""
        return _int(self.settings.get("size"))

    @property
    def created_at(self) -> float:
        """Sortable time of the entry (0 when unknown); naive timestamps are UTC."""
        try:
            moment = datetime.fromisoformat(self.created)
        except ValueError:
            return 0.0
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()

    def to_dict(self) -> dict:
        """The JSON-ready dict stored in the cache (`cache.store` adds key and images)."""
        return {
            "status": self.status, "error": self.error, "model": self.model, "weights": self.weights,
            "fingerprint": self.fingerprint, "unit": self.unit.as_dict(), "settings": dict(self.settings),
            "recipe_version": self.recipe_version, "curve": list(self.curve),
            "final_objective": self.final_objective, "final_objectives": list(self.final_objectives),
            "class_probability": self.class_probability,
            "labels": [[index, probability] for index, probability in self.labels], "seconds": self.seconds, "device": self.device,
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "EntryMeta":
        """Read stored metadata; only the unit is required (it names the entry's page)."""
        settings = data.get("settings")
        status = str(data.get("status") or "failed")
        error = data.get("error")
        return cls(
            unit=Unit.from_dict(data["unit"]),
            status=status,
            error=str(error) if error else (None if status == "ok" else "unknown error"),
            model=str(data.get("model") or ""), weights=str(data.get("weights") or ""),
            fingerprint=str(data.get("fingerprint") or ""),
            settings=dict(settings) if isinstance(settings, Mapping) else {},
            recipe_version=data.get("recipe_version"),
            curve=_numbers(data.get("curve")),
            final_objective=number(data.get("final_objective")),
            final_objectives=_numbers(data.get("final_objectives")),
            class_probability=number(data.get("class_probability")),
            labels=_labels(data.get("labels")),
            seconds=number(data.get("seconds")) or 0.0,
            device=str(data.get("device") or ""), created=str(data.get("created") or ""),
        )


def is_flat(curve) -> bool:
    """Whether a curve of at least two finite points never leaves FLAT_BAND."""
    values = [v for v in curve if math.isfinite(v)]
    if len(values) < 2:
        return False
    low, high = min(values), max(values)
    return high - low <= FLAT_BAND * max(1.0, abs(low), abs(high))


def number(value) -> float | None:
    """A finite float, or None for anything else (missing, text, NaN, infinity)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _numbers(values) -> tuple[float, ...]:
    """A curve as stored: non-finite points kept as NaN so step numbers stay right."""
    if not isinstance(values, (list, tuple)):
        return ()
    return tuple(math.nan if (v := number(value)) is None else v for value in values)


def _labels(values) -> tuple[tuple[int, float], ...]:
    """Stored top classes; malformed pairs are dropped."""
    if not isinstance(values, (list, tuple)):
        return ()
    pairs = []
    for item in values:
        if isinstance(item, (list, tuple)) and len(item) == 2:
            index, probability = _int(item[0]), number(item[1])
            if index is not None and index >= 0 and probability is not None:
                pairs.append((index, probability))
    return tuple(pairs)


def _int(value) -> int | None:
    value = number(value)
    return int(value) if value is not None and value == int(value) else None
