"""Objectives: one score per image of a batch, to be maximized.

An `Objective` maps the captured layer outputs to a tensor [B] and names the
layers it reads. Indices are per image (a LongTensor [B]) or one int for all,
so a batch of 64 channels of one layer is a single objective. Objectives
compose: `a + b`, `2 * a`, `-a`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

Activations = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Objective:
    score: Callable[[Activations], torch.Tensor]
    layers: frozenset[str]

    def __call__(self, acts: Activations) -> torch.Tensor:
        return self.score(acts)

    def __add__(self, other: "Objective") -> "Objective":
        return Objective(lambda acts: self(acts) + other(acts), self.layers | other.layers)

    def __mul__(self, factor: float) -> "Objective":
        return Objective(lambda acts: factor * self(acts), self.layers)

    __rmul__ = __mul__

    def __neg__(self) -> "Objective":
        return self * -1.0

    def __sub__(self, other: "Objective") -> "Objective":
        return self + (-other)


def _pick(output: torch.Tensor, index) -> torch.Tensor:
    """output[b, index[b], ...] for every image b, as float."""
    rows = torch.arange(output.shape[0], device=output.device)
    return output[rows, index].float()


def channel(layer: str, index) -> Objective:
    """Mean activation of one channel (a logit, for a 2-D output)."""
    def score(acts):
        picked = _pick(acts[layer], _as_index(index, acts[layer]))
        return picked.flatten(1).mean(1) if picked.dim() > 1 else picked
    return Objective(score, frozenset([layer]))


logit = channel


def neuron(layer: str, index) -> Objective:
    """The activation of one channel at the centre of the map."""
    def score(acts):
        out = acts[layer]
        picked = _pick(out, _as_index(index, out))
        return picked[:, out.shape[2] // 2, out.shape[3] // 2] if picked.dim() == 3 else picked
    return Objective(score, frozenset([layer]))


def class_probability(layer: str, index) -> Objective:
    """The softmax probability of one class."""
    def score(acts):
        out = acts[layer].float()
        return _pick(F.softmax(out, dim=1), _as_index(index, out))
    return Objective(score, frozenset([layer]))


def class_log_probability(layer: str, index) -> Objective:
    """The log-softmax of one class: its logit minus the log-sum-exp of all, so
    raising it also pushes the other classes down. Its gradient is the logit's
    times (1 - p): it fades once the model is sure (later than the softmax's, p (1 - p))."""
    def score(acts):
        out = acts[layer].float()
        return _pick(F.log_softmax(out, dim=1), _as_index(index, out))
    return Objective(score, frozenset([layer]))


def class_log_odds(layer: str, index) -> Objective:
    """The log-odds of one class, log p / (1 - p): its logit minus the log-sum-exp
    of the others. Raising it pushes the strongest rivals down, as the log-softmax
    does, but its gradient never fades: the target's logit always counts in full."""
    def score(acts):
        out = acts[layer].float()
        rows = torch.arange(out.shape[0], device=out.device)
        target = _as_index(index, out)
        rivals = out.clone()
        rivals[rows, target] = float("-inf")
        return _pick(out, target) - torch.logsumexp(rivals, dim=1)
    return Objective(score, frozenset([layer]))


def deepdream(layer: str) -> Objective:
    """Mean squared activation of the whole layer."""
    return Objective(lambda acts: acts[layer].float().pow(2).flatten(1).mean(1), frozenset([layer]))


def direction(layer: str, weights: torch.Tensor) -> Objective:
    """A direction in the layer's activation space, one per image (`weights` [B, C]):
    the mean over positions of the activation vector's dot product with it, as
    Lucid's `direction` objective (for a flat layer, the dot product itself)."""
    def score(acts):
        out = acts[layer].float()
        means = out.flatten(2).mean(2) if out.dim() > 2 else out
        return (means * weights.to(out.device)).sum(1)
    return Objective(score, frozenset([layer]))


MIN_COSINE = 0.1   # Lucid floors the similarity so a power never flips the sign, and early steps get a gradient


def dot_compare(mine: torch.Tensor, target: torch.Tensor, power: torch.Tensor) -> torch.Tensor:
    """[B] the dot product of each row of `mine` with `target` (flattened alike), times
    their cosine similarity floored at MIN_COSINE, to the row's `power` (Lucid's `dot_compare`)."""
    dot = (mine * target).flatten(1).sum(1)
    cosine = dot / (mine.flatten(1).norm(dim=1) * target.flatten(1).norm(dim=1) + 1e-6)
    return dot * cosine.clamp(min=MIN_COSINE) ** power


def centre_direction(layer: str, vectors: torch.Tensor, power: torch.Tensor) -> Objective:
    """An activation-atlas icon (Carter et al. 2019): the activation vector at the centre of
    the map compared with one direction per image (`vectors` [B, C]) by `dot_compare`."""
    def score(acts):
        out = acts[layer]
        out = out.float() if out.dtype in (torch.bfloat16, torch.float16) else out   # float64 stays (gradcheck)
        centre = out[:, :, out.shape[2] // 2, out.shape[3] // 2]
        return dot_compare(centre, vectors.to(out.device, out.dtype), power.to(out.device, out.dtype))
    return Objective(score, frozenset([layer]))


def spread_direction(layer: str, vectors: torch.Tensor, power: torch.Tensor) -> Objective:
    """A dictionary feature: every position's activation vector compared with one direction
    per image (`vectors` [B, C]) by `dot_compare`, averaged over the map. The cosine keeps
    the picture from buying score by raising every channel at once, which a plain dot
    product with a direction rewards."""
    def score(acts):
        out = acts[layer]
        out = out.float() if out.dtype in (torch.bfloat16, torch.float16) else out
        b, c = out.shape[:2]
        rows = out.flatten(2).transpose(1, 2).reshape(-1, c)                      # [B * P, C]
        positions = rows.shape[0] // b
        target = vectors.to(out.device, out.dtype).repeat_interleave(positions, 0)
        each = dot_compare(rows, target, power.to(out.device, out.dtype).repeat_interleave(positions, 0))
        return each.view(b, positions).mean(1)
    return Objective(score, frozenset([layer]))


def diversity(layer: str, groups: torch.Tensor, images: torch.Tensor | None = None) -> Objective:
    """Push images of the same group apart: minus the summed cosine similarity
    of each row's Gram matrix (its style at `layer`) to the others in its
    group, as Lucid does. Rows alone in their group score 0, so no unit feels
    another unit's images. Rows with the same `images` id (views of one image)
    are not pushed apart."""
    def score(acts):
        out = acts[layer].float()
        flat = out.flatten(2)
        gram = F.normalize((flat @ flat.transpose(1, 2)).flatten(1), dim=1)
        similarity = gram @ gram.T
        g = groups.to(out.device)
        own = torch.arange(len(g), device=out.device) if images is None else images.to(out.device)
        mates = (g[:, None] == g[None, :]) & (own[:, None] != own[None, :])
        return -(similarity * mates).sum(1)
    return Objective(score, frozenset([layer]))


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """[B] mean absolute difference between neighbouring pixels of images [B, C, H, W]."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).abs().flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).abs().flatten(1).mean(1)
    return dx + dy


def _as_index(index, output: torch.Tensor):
    return index.to(output.device) if isinstance(index, torch.Tensor) else index
