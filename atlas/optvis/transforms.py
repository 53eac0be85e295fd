"""Transformation robustness: a random affine view of every image at every step.

The reference chain (Lucid) is: pad 12 with grey, jitter 8, scale 0.90..1.10,
rotate -10..10 degrees, jitter 4. All of it is one affine map per image, so the
whole chain costs a single `grid_sample`. The random draws for every step are
made up front from each image's own generator: a unit's noise does not depend
on which other units share its batch, and the loop has no per-step Python work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

PAD = 12
JITTER = (8, 4)
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # extra weight on no rotation

# Columns of one step's draw: two jitters (x, y each), a scale, an angle.
N_PARAMS = 6


def draw(steps: int, generator: torch.Generator) -> torch.Tensor:
    """[steps, N_PARAMS] random transform parameters for one image."""
    jitters = [torch.randint(0, d, (steps, 2), generator=generator).float() - (d - 1) / 2 for d in JITTER]
    scale = torch.tensor(SCALES)[torch.randint(0, len(SCALES), (steps, 1), generator=generator)]
    angle = torch.tensor(ANGLES, dtype=torch.float)[torch.randint(0, len(ANGLES), (steps, 1), generator=generator)]
    return torch.cat([jitters[0], jitters[1], scale, angle], dim=1)


def output_size(size: int) -> int:
    """Side of the transformed view: padded, then cropped by both jitters."""
    return size + 2 * PAD - sum(JITTER)


def apply(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Transform a batch [B,3,H,W] with per-image params [B, N_PARAMS]; differentiable."""
    b, _, h, w = images.shape
    padded = F.pad(images, (PAD,) * 4, value=0.5)
    size_in = h + 2 * PAD
    size_out = output_size(h)
    shift = (params[:, 0:2] + params[:, 2:4]) * (2.0 / size_in)  # pixels -> normalized coordinates
    scale, angle = params[:, 4], params[:, 5] * (math.pi / 180)
    zoom = (size_out / size_in) / scale
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                         torch.stack([sin, cos, shift[:, 1]], 1)], 1).to(images.dtype)
    grid = F.affine_grid(theta, (b, 3, size_out, size_out), align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)
