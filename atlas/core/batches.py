"""Which units render together: batch keys and cutting groups into batches.

Pure functions over units, shared by the plan (which cuts a build's batches so a
resumed build repeats them) and the engine (which cuts a batch again when CUDA
runs out of memory). A unit with diversity D takes D images of a batch.
"""

from __future__ import annotations

from .units import Unit


def batch_key(unit: Unit) -> tuple:
    """Units sharing a key run in one batch: one layer, one objective, one truncated forward.
    A kind may batch across layers (one photo's caricatures: one forward serves them all)
    and may keep units with different values of a parameter apart (kinds.Kind)."""
    kind = unit.kind
    layer = "" if kind.across_layers else unit.layer
    apart = unit.param(kind.batch_param) if kind.batch_param else None
    key = (layer, unit.objective, unit.negative, unit.diversity)
    return key if apart is None else key + (apart,)


def cut(group: list[Unit], images: int) -> list[list[Unit]]:
    """`group` (units of one batch key) in batches of at most `images` images, in order."""
    per_batch = max(1, images // group[0].diversity)
    return [group[i:i + per_batch] for i in range(0, len(group), per_batch)]


def batches(units: list[Unit], images: int) -> list[list[Unit]]:
    """Group units by batch key (in order of first appearance) and cut each group
    into batches of at most `images` images."""
    groups: dict[tuple, list[Unit]] = {}
    for unit in units:
        groups.setdefault(batch_key(unit), []).append(unit)
    return [batch for group in groups.values() for batch in cut(group, images)]
