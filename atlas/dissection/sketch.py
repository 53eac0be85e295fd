"""Per-unit quantiles of activations over a whole dataset, in memory that does not grow with it.

Every activation value (each image, each position) of a unit is counted into one
of `BINS` bins: its half-precision bit pattern, ordered like the values, with the
lowest 4 mantissa bits dropped. So each power of two holds 64 bins: bins are
proportionally narrow for every magnitude, as activations need, and binning is
integer arithmetic (a float-to-half conversion and a few shifts, about ten times
cheaper than a logarithm on a CPU). Counts add, so sketches of shards merge
exactly, and the state is [units, BINS] integers however many images are read.

The stated error: `quantile` interpolates linearly inside the bin holding the
quantile, so the estimate and the exact sample quantile lie in the same bin, up
to the rounding of a value to half precision on its way in. They differ by less
than `error_bound(x)`: the bin's width, at most 1/64 (1.6 %) of |x| for
|x| >= 6.1e-5 and 9.5e-7 below, plus that rounding, 1/2048 of |x|. Values beyond
half precision's range (|x| > 65,504) land in end bins; a quantile there is
flagged by `saturated`.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

SHIFT = 4                  # of the 10 mantissa bits of a half float, keep 6: 64 bins per octave
BINS = 1 << (16 - SHIFT)   # 4096
MAX_VALUE = 65504.0        # the largest finite half float


def _bins16(values: torch.Tensor) -> torch.Tensor:
    """Each value's bin less BINS // 2, as int16: its half-float bits, negative patterns
    flipped so the integers sort like the values, shifted right by SHIFT."""
    bits = values.to(torch.float16).view(torch.int16)
    return (bits ^ ((bits >> 15) & 0x7FFF)) >> SHIFT


def bin_of(values: torch.Tensor) -> torch.Tensor:
    """The bin index of every value (int32, same shape)."""
    return _bins16(values).to(torch.int32) + BINS // 2


@functools.lru_cache(maxsize=1)
def edges() -> np.ndarray:
    """[BINS + 1] float64: bin b holds values in [edges[b], edges[b + 1]); bins beyond
    half precision's range (infinities and NaN patterns) are pinned to +-MAX_VALUE."""
    ordered = (np.arange(BINS, dtype=np.int32) - BINS // 2) << SHIFT      # each bin's first (lowest) value
    bits = np.where(ordered < 0, ordered ^ 0x7FFF, ordered).astype(np.int16)
    values = bits.view(np.float16).astype(np.float64)
    values = np.where(np.isnan(values), np.where(ordered < 0, -np.inf, np.inf), values)
    return np.append(np.clip(values, -MAX_VALUE, MAX_VALUE), MAX_VALUE)


def bin_width(value: float) -> float:
    """Width of the bin that holds `value`: the bound on a quantile's error there."""
    b = int(bin_of(torch.tensor([float(value)]))[0])
    return float(edges()[b + 1] - edges()[b])


def error_bound(value: float) -> float:
    """How far `quantile` may be from the exact sample quantile `value` (module docstring)."""
    return bin_width(value) + abs(value) / 2048


def new_counts(units: int, device=None) -> torch.Tensor:
    return torch.zeros(units, BINS, dtype=torch.int64, device=device)


def add(counts: torch.Tensor, maps: torch.Tensor) -> None:
    """Count every value of `maps` [B, C, H, W] (or [B, C]) into `counts` [C, BINS], in place."""
    units = maps.shape[1]
    shape = (1, units) + (1,) * (maps.dim() - 2)
    offsets = (torch.arange(units, device=maps.device, dtype=torch.int32) * BINS + BINS // 2).view(shape)
    flat = _bins16(maps).to(torch.int32) + offsets     # one bin per value and unit, in [0, units * BINS)
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
    share = np.clip(np.where(inside > 0, (target - beyond) / np.maximum(inside, 1), 0.0), 0, 1)
    # The top `share` of this bin's mass lies above the quantile.
    low, high = edges()[index], edges()[index + 1]
    return low + (1 - share) * (high - low)


def saturated(counts: np.ndarray, upper: float) -> np.ndarray:
    """[C] whether a unit's quantile falls where half precision saturates (then it is only a bound)."""
    return np.abs(quantile(counts, upper)) >= MAX_VALUE


def band(counts: np.ndarray, dead_eps: float) -> dict[str, np.ndarray]:
    """Per unit, from counts [C, BINS]: `low` and `high`, every counted value lies in
    [low, high); `dead`, the band is one bin wide or within +-dead_eps of zero (the
    unit's top-quantile region is then noise, never a concept). A unit with no value
    counted is dead too."""
    counts = np.asarray(counts)
    seen = counts > 0
    first = np.where(seen.any(1), np.argmax(seen, axis=1), 0)
    last = np.where(seen.any(1), BINS - 1 - np.argmax(seen[:, ::-1], axis=1), 0)
    low, high = edges()[first], edges()[last + 1]
    dead = ~seen.any(1) | (first == last) | (np.maximum(np.abs(low), np.abs(high)) <= dead_eps)
    return {"low": low.astype(np.float32), "high": high.astype(np.float32), "dead": dead}
