"""Layer layouts: where a layer's output keeps its channels, and the one place
activations are brought to a common shape.

Convnets return maps `[B, C, H, W]` (NCHW). Swin and ConvNeXt's MLPs work
channels-last, `[B, H, W, C]` (NHWC). Vision transformers return tokens
`[B, N, C]`: a few prefix tokens (CLS, registers) and then one token per patch,
row by row. Logits and other vectors are `[B, C]` (flat).

`Layout.to_maps` turns any of them into `[B, C, H, W]` (or `[B, C]` for flat
outputs), with the prefix tokens dropped and the patch tokens laid back on
their grid. Every objective (channel = mean over the map, neuron = its centre,
DeepDream, diversity) and the dataset examples read that one shape, so they
work on every layout unchanged: a channel of a token layer is the mean over
patch tokens with CLS excluded, as Ghiasi et al. (2022) visualize ViT features.


This module imports no torch at load time (it only calls tensor methods, and
`detect` imports `torch.nn` when it runs), so the objective registry and the
site can name layouts without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

# Most leading non-patch tokens a layout accepts (CLS plus a few registers).
MAX_PREFIX = 8


class Arrangement(StrEnum):
    """Where an output keeps its channels; the values are what model cards store."""
    NCHW = "nchw"      # maps, channels first
    NHWC = "nhwc"      # maps, channels last
    TOKENS = "tokens"  # [B, N, C]: prefix tokens, then patches row by row
    FLAT = "flat"      # [B, C]: one vector


SPATIAL = frozenset({Arrangement.NCHW, Arrangement.NHWC, Arrangement.TOKENS})
EVERY = SPATIAL | {Arrangement.FLAT}


@dataclass(frozen=True)
class Layout:
    """How one layer's output holds its channels."""

    kind: Arrangement
    prefix: int = 0  # tokens only: leading tokens that are not patches (CLS, registers)

    def __post_init__(self):
        object.__setattr__(self, "kind", Arrangement(self.kind))

    @property
    def spatial(self) -> bool:
        """Whether the output has positions (a map or patches), not just one vector."""
        return self.kind in SPATIAL

    @property
    def channels_last(self) -> bool:
        """Whether channels are the last dimension (NHWC maps and tokens)."""
        return self.kind in (Arrangement.NHWC, Arrangement.TOKENS)

    def channels(self, output: torch.Tensor) -> int:
        return int(output.shape[-1] if self.channels_last else output.shape[1])

    def to_maps(self, output: torch.Tensor) -> torch.Tensor:
        """`[B, C, H, W]` for spatial layouts, `[B, C]` for flat ones."""
        if self.kind == Arrangement.NHWC:
            return output.permute(0, 3, 1, 2)
        if self.kind == Arrangement.TOKENS:
            patches = output[:, self.prefix:]
            b, n, c = patches.shape
            side = math.isqrt(n)
            rows, cols = (side, side) if side * side == n else (1, n)  # a non-square grid: one row
            return patches.transpose(1, 2).reshape(b, c, rows, cols)
        return output

    def from_maps(self, maps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_maps`: `maps` [B, C, H, W] back in this layout, shaped like
        `like` (a tensor the layer output; its prefix tokens become zeros)."""
        if self.kind == Arrangement.NHWC:
            return maps.permute(0, 2, 3, 1)
        if self.kind == Arrangement.TOKENS:
            import torch

            b, c = maps.shape[:2]
            patches = maps.reshape(b, c, -1).transpose(1, 2)
            return torch.cat([patches.new_zeros(b, self.prefix, c), patches], 1).reshape(b, *like.shape[1:])
        return maps.reshape(maps.shape[0], *like.shape[1:])

    def __str__(self) -> str:
        if self.kind == Arrangement.TOKENS:
            return f"tokens+{self.prefix}" if self.prefix else "tokens"
        return self.kind.upper() if self.kind != Arrangement.FLAT else "flat"


NCHW = Layout(Arrangement.NCHW)
NHWC = Layout(Arrangement.NHWC)
FLAT = Layout(Arrangement.FLAT)


def tokens(prefix: int = 0) -> Layout:
    return Layout(Arrangement.TOKENS, prefix)


def detect(module: nn.Module, output: torch.Tensor, batch: int, previous: Layout | None) -> Layout | None:
    """The layout of `module`'s `output` in a probe of `batch` square images,
    or None when it holds no per-channel activations we can read (attention
    internals, window partitions, scalars).

    Square input, square maps: NCHW has H == W in dims 2, 3; NHWC in dims 1, 2.
    When both hold (C == H == W), a Linear or LayerNorm (features last by
    construction) or the previous map layer in forward order (an activation
    after a channels-last Linear) decides.
    """
    import torch
    from torch import nn

    if not isinstance(output, torch.Tensor) or output.dim() < 2 or output.shape[0] != batch:
        return None
    if output.dim() == 2:
        return FLAT
    if output.dim() == 3:
        return _tokens(output.shape[1])
    if output.dim() != 4:
        return None
    if isinstance(module, nn.Conv2d):
        return NCHW
    first, second = output.shape[2] == output.shape[3], output.shape[1] == output.shape[2]
    if first and second:
        # Linear and LayerNorm put features in the last dimension of any tensor.
        features_last = isinstance(module, (nn.Linear, nn.LayerNorm))
        return NHWC if features_last or previous == NHWC else NCHW
    if first:
        return NCHW
    if second:
        return NHWC
    return None


def _tokens(count: int) -> Layout | None:
    """Patch tokens fill a square grid after at most MAX_PREFIX prefix tokens."""
    for prefix in range(min(MAX_PREFIX, count - 1) + 1):
        side = math.isqrt(count - prefix)
        if side * side == count - prefix:
            return tokens(prefix)
    return None
