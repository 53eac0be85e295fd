"""Where a feature fires on its top photos: a heatmap over each crop a feature page shows.

`FeatureTop` keeps, beside each top photo's value, the feature's code map over that photo
(`coarse_maps`: max-pooled to at most MAP_SIDE cells a side, so memory stays D × k ×
MAP_SIDE² numbers a layer whatever its resolution). Once the crops are known, `over_crops`
resamples each map to its crop's box (`torchvision.ops.roi_align`) and scales it by the
feature's hottest cell over all its top photos: full heat on a page is where the feature
fired most on any of them, so the heatmaps of one feature compare.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

MAP_SIDE = 14     # most cells a side of a top photo's stored code map
HEAT_SIDE = 12    # cells a side of the heatmap over a crop (a page scales it to the crop, smoothly)


def coarse_grid(grid: tuple[int, int]) -> tuple[int, int]:
    """The side of the maps `coarse_maps` keeps for a layer whose map is `grid` (rows, columns)."""
    return min(grid[0], MAP_SIDE), min(grid[1], MAP_SIDE)


def coarse_maps(codes: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[D, cells] each feature's map over one photo, from its codes [positions, D] on `grid`,
    max-pooled to `coarse_grid` (a peak stays a peak)."""
    maps = codes.T.reshape(-1, *grid)
    if coarse_grid(grid) != tuple(grid):
        maps = F.adaptive_max_pool2d(maps[None], coarse_grid(grid))[0]
    return maps.flatten(1)


def over_crops(maps: torch.Tensor, boxes: np.ndarray, grid: tuple[int, int], size: int) -> np.ndarray:
    """uint8 [D, k, HEAT_SIDE, HEAT_SIDE]: the maps [D, k, cells] of each feature's top photos
    on the coarse `grid`, each over its crop's box [D, k, 4] (left, top, right, bottom in
    pixels of the `size`-px view the model saw), 255 at the feature's hottest cell over them all."""
    d, k = maps.shape[:2]
    rows, cols = grid
    flat = maps.detach().float().cpu().reshape(d * k, 1, rows, cols)
    # Boxes in the map's own cells (cell i spans [i, i + 1)): rows and columns may differ in scale.
    scaled = torch.as_tensor(boxes, dtype=torch.float32).reshape(d * k, 4) * torch.tensor(
        [cols / size, rows / size, cols / size, rows / size])
    rois = torch.cat([torch.arange(d * k, dtype=torch.float32)[:, None], scaled], 1)
    heat = roi_align(flat, rois, (HEAT_SIDE, HEAT_SIDE), spatial_scale=1.0, aligned=True).reshape(d, k, -1)
    # Scaled by the hottest cell of the feature's heatmaps, not its raw peak: resampling
    # spreads a one-cell peak, and the brightest heat on a page should be full heat.
    peak = heat.reshape(d, -1).amax(1).clamp_min(1e-12)
    heat = (heat / peak[:, None, None]).clamp(0, 1).reshape(d, k, HEAT_SIDE, HEAT_SIDE)
    return (heat * 255).round().to(torch.uint8).numpy()
