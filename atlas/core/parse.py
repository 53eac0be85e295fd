"""What users type, parsed: index lists, unit names, shards. One parser each, run once per build."""

from __future__ import annotations

import re

from .errors import AtlasError


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


def parse_unit(text: str) -> tuple[str, int]:
    """'features.28:54' (or 'features.28[54]') -> ('features.28', 54); the plan checks it against the model."""
    match = re.fullmatch(r"\s*(.+?)\s*(?::|\[)\s*(\d+)\s*\]?\s*", text)
    if not match:
        raise AtlasError(f"malformed unit {text!r}: use LAYER:INDEX, e.g. features.28:54")
    return match[1], int(match[2])


def parse_shard(text: str | None) -> tuple[int, int]:
    """'K/N' (1-based) -> (K, N); None -> (1, 1)."""
    if not text:
        return 1, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match[1]) <= int(match[2]):
        raise AtlasError(f"malformed --shard {text!r}: use K/N with 1 <= K <= N, e.g. 2/8")
    return int(match[1]), int(match[2])
