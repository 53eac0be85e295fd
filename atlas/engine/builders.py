"""Objective builders: the arithmetic of every kind in the registry (`atlas.kinds`).

A builder gets the batch's rows (one `Unit` per image view, so per-row
parameters line up with the batch) and a `Context`, and returns an `Objective`.
Each is registered under its kind's name with `@kinds.builds`, so the registry
stays a torch-free leaf that the site can read, while the engine owns the maths.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..core import kinds
from ..core.units import Unit
from . import objectives
from .caricatures import caricature_objective
from .context import Context
from .objectives import Objective


def build(rows: Sequence[Unit], context: Context) -> Objective:
    """The score the rows' kind of objective measures, before sign and diversity."""
    return kinds.builder(rows[0].objective)(rows, context)


def _index(rows: Sequence[Unit], device) -> torch.Tensor:
    """One index per row, on the device: an objective moves nothing to it during a step
    (nothing a CUDA graph could not replay)."""
    return torch.tensor([u.index for u in rows], device=device)


def _per_row(name: str, measure):
    """Register `measure(layer, indices)` as the builder of kind `name`: the batch's
    layer and one index per row."""
    kinds.builds(name)(lambda rows, ctx: measure(rows[0].layer, _index(rows, ctx.device)))


_per_row("channel", objectives.channel)
_per_row("neuron", objectives.neuron)
_per_row("logit", objectives.logit)
_per_row("prob", objectives.class_probability)
_per_row("logsoftmax", objectives.class_log_probability)
_per_row("logodds", objectives.class_log_odds)


@kinds.builds("deepdream")
def _deepdream(rows, ctx):
    return objectives.deepdream(rows[0].layer)


@kinds.builds("direction")
def _direction(rows, ctx):
    weights = torch.tensor([u.param("weights") for u in rows], dtype=torch.float32, device=ctx.device)
    return objectives.direction(rows[0].layer, weights)


kinds.builds("caricature")(caricature_objective)


@kinds.builds("icon")
def _icon(rows, ctx):
    vectors = torch.tensor([u.param("direction") for u in rows], dtype=torch.float32, device=ctx.device)
    powers = torch.tensor([float(u.param("power")) for u in rows], device=ctx.device)
    return objectives.centre_direction(rows[0].layer, vectors, powers)


@kinds.builds("feature")
def _feature(rows, ctx):
    vectors = torch.tensor([u.param("direction") for u in rows], dtype=torch.float32, device=ctx.device)
    powers = torch.tensor([float(u.param("power")) for u in rows], device=ctx.device)
    return objectives.spread_direction(rows[0].layer, vectors, powers)
