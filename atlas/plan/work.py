"""From a selection to work: which units, which are cached, in which batches.

Pure functions over units; the only I/O is reading the cache to drop units
already rendered with the same settings. How units group into batches is
`atlas.batches`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ..store import cache
from ..core.errors import AtlasError
from ..model.classifier import Model
from ..core.settings import Settings
from ..core.units import Unit


def parse_indices(text: str, limit: int, what: str) -> list[int]:
    """'1,3,10-12' -> [1, 3, 10, 11, 12], each checked against range(limit)."""
    indices: list[int] = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise AtlasError(f"malformed {what} {part!r}: use indices and ranges like 1,3,10-20")
        low, high = int(match[1]), int(match[2] or match[1])
        if low > high:
            raise AtlasError(f"malformed {what} range {part!r}: start is after end")
        if high >= limit:
            raise AtlasError(f"{what} {high} is out of range 0-{limit - 1}")
        indices += [i for i in range(low, high + 1) if i not in indices]
    if not indices:
        raise AtlasError(f"no {what} given")
    return indices


def parse_unit(model: Model, text: str) -> tuple[str, int]:
    """'features.28:54' (or 'features.28[54]') -> ('features.28', 54), checked."""
    match = re.fullmatch(r"\s*(.+?)\s*(?::|\[)\s*(\d+)\s*\]?\s*", text)
    if not match:
        raise AtlasError(f"malformed unit {text!r}: use LAYER:INDEX, e.g. features.28:54")
    layer = model.layer(match[1])
    index = int(match[2])
    if index >= layer.channels:
        raise AtlasError(f"unit {text!r} is out of range: {layer.name} has {layer.channels} channels")
    return layer.name, index


def parse_shard(text: str | None) -> tuple[int, int]:
    """'K/N' (1-based) -> (K, N); None -> (1, 1)."""
    if not text:
        return 1, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise AtlasError(f"malformed --shard {text!r}: use K/N with 1 <= K <= N, e.g. 2/8")
    return int(match[1]), int(match[2])


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
