"""From a selection to work: which units, which are cached, in which batches.

Pure functions over units; the only I/O is reading the cache to drop units
already rendered with the same settings. How units group into batches is
`atlas.batches`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..store import cache
from ..model.classifier import Model
from ..core.settings import Settings
from ..core.units import Unit


def shard(units: list[Unit], k: int, n: int) -> list[Unit]:
    """Shard K of N (1-based): every N-th unit, so each shard gets every layer's share."""
    return units[k - 1::n]


@dataclass
class Plan:
    """The units of a build with their cache keys, split into cached and to-do."""
    keys: dict[Unit, str]
    todo: list[Unit] = field(default_factory=list)
    cached: list[Unit] = field(default_factory=list)


def make_plan(model: Model, units: list[Unit], settings: Settings, cache_root: Path) -> Plan:
    plan = Plan(keys={u: cache.entry_key(model.name, model.fingerprint, u, settings) for u in units})
    for unit, key in plan.keys.items():
        entry = cache.load(cache_root, key)
        (plan.cached if entry is not None and entry.ok else plan.todo).append(unit)
    return plan
