"""Per-unit quantiles of activations over a whole dataset, in memory that does not grow with it.

Every activation value (each image, each position) of a unit falls into one of
`BINS` bins spaced evenly in asinh(x) over [-SPAN, SPAN] (values beyond go to the
end bins): fine near zero, proportionally wide for large values, as activations
need. Counts add, so sketches of shards merge exactly, and the state is
[units, BINS] integers however many images are read.

The stated error: `quantile` interpolates linearly (in asinh space) inside the bin
holding the quantile, so the estimate lies within that bin, and differs from the
exact sample quantile by less than the bin's width. In x, that is at most
`bin_width(x)` = WIDTH * cosh(asinh(x)): 0.49 % of |x| for |x| > 1 and 0.0049 near
zero (WIDTH = 2 * SPAN / BINS). A quantile that lands in an end bin (values
beyond +-sinh(SPAN), about 11,000) is flagged by `saturated`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

BINS = 4096
SPAN = 10.0
WIDTH = 2 * SPAN / BINS


def bin_width(value: float) -> float:
    """Width in x of the bin that holds `value`: the bound on a quantile's error there."""
    return WIDTH * math.cosh(math.asinh(value))


def bin_of(values: torch.Tensor) -> torch.Tensor:
    """The bin index of every value (int64, same shape)."""
    scaled = (torch.asinh(values.float()) + SPAN) / WIDTH
    return scaled.floor().clamp_(0, BINS - 1).long()


def new_counts(units: int, device=None) -> torch.Tensor:
    return torch.zeros(units, BINS, dtype=torch.int64, device=device)


def add(counts: torch.Tensor, maps: torch.Tensor) -> None:
    """Count every value of `maps` [B, C, H, W] (or [B, C]) into `counts` [C, BINS], in place."""
    units = maps.shape[1]
    per_unit = maps.transpose(0, 1).reshape(units, -1)
    flat = bin_of(per_unit) + torch.arange(units, device=maps.device)[:, None] * BINS
    counts += torch.bincount(flat.flatten(), minlength=units * BINS).view(units, BINS)


def quantile(counts: np.ndarray, upper: float) -> np.ndarray:
    """[C] the value above which a fraction `upper` of each unit's values lie
    (0.005: NetDissect's threshold), from counts [C, BINS] (numpy, as stored)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(1)
    above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1]      # values in this bin or higher bins
    target = upper * total
    # The bin holding the quantile: the highest bin whose count from the top reaches the target.
    reached = above >= target[:, None]
    index = np.where(reached.any(1), BINS - 1 - np.argmax(reached[:, ::-1], axis=1), 0)
    rows = np.arange(len(counts))
    inside = counts[rows, index]
    beyond = above[rows, index] - inside                        # count in the higher bins
    share = np.where(inside > 0, (target - beyond) / np.maximum(inside, 1), 0.0)
    # The top `share` of this bin's mass lies above the quantile.
    u = -SPAN + (index + 1 - np.clip(share, 0, 1)) * WIDTH
    return np.sinh(u)


def saturated(counts: np.ndarray, upper: float) -> np.ndarray:
    """[C] whether a unit's quantile falls in an end bin (then it is only a bound)."""
    value = quantile(counts, upper)
    return np.abs(np.arcsinh(value)) >= SPAN - WIDTH
