"""The caricature objective: excite a layer the way a photo does (Microscope's "caricature").

For a photo and a layer, the score of an image is the dot product of its
activations with the photo's, times their cosine similarity to a power (Lucid's
`dot_compare`, the similarity floored at 0.1 so that a power never flips the
sign or vanishes). Lucid's recipe uses power 0, the dot product alone; atlas
uses 1, which kept the layout of the photo better (spatial correlation of a
TinyVGG layer's maps with the photo's: 0.41 against 0.32 at power 0; a channel
image: 0.08), so the image exaggerates what the layer sees in the photo without
drifting from where it sees it.

The photo's activations are computed once per batch (`Context.memo`) and
resampled to the size of the image's views.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ..core.errors import AtlasError
from ..model.classifier import normalize
from ..model.forward import activations
from .objectives import Objective, dot_compare

if TYPE_CHECKING:
    from ..core.units import Unit
    from .context import Context

DEFAULT_POWER = 1.0   # cosine similarity's power (Lucid's recipe: 0, the dot product alone)


def caricature_objective(rows: list["Unit"], ctx: "Context") -> Objective:
    """Each row's score: its layer's activations compared with the photo's (resampled
    to the row's map size) by `dot_compare`."""
    layers = sorted({u.layer for u in rows})
    groups = {layer: torch.tensor([i for i, u in enumerate(rows) if u.layer == layer], device=ctx.device)
              for layer in layers}
    targets = _targets(rows, ctx)
    photos = {layer: [u.param("photo") for u in rows if u.layer == layer] for layer in layers}
    powers = torch.tensor([float(u.param("power")) for u in rows], device=ctx.device)

    def score(acts):
        first = acts[layers[0]]
        total = torch.zeros(len(rows), device=first.device)
        for layer in layers:
            index = groups[layer].to(first.device)
            mine = acts[layer][index].float()
            target = torch.stack([_resized(targets[(p, layer)], mine.shape[2:], ctx.memo) for p in photos[layer]])
            total = total.index_put((index,), dot_compare(mine, target, powers[index]))
        return total

    return Objective(score, frozenset(layers))


def _targets(rows: list["Unit"], ctx: "Context") -> dict[tuple[str, str], torch.Tensor]:
    """The photo's activations at every layer a row needs, computed once per batch."""
    wanted = {(u.param("photo"), u.layer) for u in rows}
    missing = {photo for photo, layer in wanted if ("target", photo, layer) not in ctx.memo}
    for photo in sorted(missing):
        if photo not in ctx.photos:
            raise AtlasError(f"caricature of photo {photo}: the photo was not given to the render")
        image = ctx.photos[photo].to(ctx.device)[None]
        layers = {layer for p, layer in wanted if p == photo}
        with torch.no_grad(), ctx.runtime.autocast():
            acts = activations(ctx.model, normalize(ctx.model, image), layers)
        for layer in layers:
            ctx.memo[("target", photo, layer)] = acts[layer][0].float().detach()
    return {(p, layer): ctx.memo[("target", p, layer)] for p, layer in wanted}


def _resized(target: torch.Tensor, shape, memo: dict) -> torch.Tensor:
    """The photo's map at the size of the image's view (the views are a little larger
    than the photo: padded and jittered), computed once per size."""
    if target.dim() == 1 or tuple(target.shape[1:]) == tuple(shape):
        return target
    key = ("resized", id(target), tuple(shape))
    if key not in memo:
        memo[key] = F.interpolate(target[None], size=tuple(shape), mode="bilinear", align_corners=False)[0]
    return memo[key]
