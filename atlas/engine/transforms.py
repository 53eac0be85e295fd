"""Transformation robustness: random views of every image at every step.

A recipe (settings.Recipe) decides what the model sees of an image:

  lucid  the reference chain (Lucid): pad 12 with grey, jitter 8, scale
         0.90..1.10, rotate -10..10 degrees, jitter 4; one view per step.
  crops  several random square crops per step, from half the frame to all of
         it, mirrored and slightly rotated, edges reflected, each resampled to
         a fixed view size, their colours shifted and pixel noise added where
         the recipe says; the objective is averaged over them.

Every view is one affine map, so a step's views cost a single `grid_sample`.
The random draws for every step (and a recipe's noise field) are made up front
from each image's own generator: a unit's views do not depend on which other
units share its batch, and the loop has no per-step Python work.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..core.settings import Recipe

PAD = 12
JITTER = (8, 4)
SCALES = tuple(1 + (i - 5) / 50 for i in range(11))
ANGLES = tuple(range(-10, 11)) + (0,) * 5  # extra weight on no rotation


def draw(recipe: Recipe, steps: int, generator: torch.Generator) -> torch.Tensor:
    """[steps, views, P] random view parameters for one image."""
    if recipe.transforms == "lucid":
        return _draw_lucid(steps, generator)[:, None]
    return _draw_crops(recipe, steps, generator)


def noise_field(recipe: Recipe, size: int, generator: torch.Generator) -> torch.Tensor | None:
    """[3, 2s, 2s] standard Gaussian noise (s: the side of a view) that one image's
    views take windows of, drawn after its views; None where the recipe adds no noise.
    Drawn once, so the loop needs no random numbers of its own."""
    if not recipe.noise:
        return None
    side = 2 * output_size(recipe, size)
    return torch.randn((3, side, side), generator=generator)


def apply(recipe: Recipe, images: torch.Tensor, params: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """Views [B*views, 3, h, w] of a batch [B, 3, H, W] from params [B, views, P]; differentiable.
    The views of image b are rows b*views ... b*views + views - 1. `noise` [B, 3, 2h, 2w]
    holds each image's noise field where the recipe adds noise."""
    if recipe.transforms == "lucid":
        return _apply_lucid(images, params[:, 0])
    if recipe.noise and noise is None:
        raise ValueError("this recipe adds noise: pass each image's noise_field")
    return _apply_crops(recipe, images, params, output_size(recipe, images.shape[-1]), noise)


def output_size(recipe: Recipe, size: int) -> int:
    """Side of every view of a `size` image."""
    if recipe.transforms == "lucid":
        return size + 2 * PAD - sum(JITTER)  # padded, then cropped by both jitters
    return max(16, round(size * recipe.view_scale))


def _draw_lucid(steps: int, generator: torch.Generator) -> torch.Tensor:
    """[steps, 6]: two jitters (x, y each), a scale, an angle."""
    jitters = [torch.randint(0, d, (steps, 2), generator=generator).float() - (d - 1) / 2 for d in JITTER]
    scale = torch.tensor(SCALES)[torch.randint(0, len(SCALES), (steps, 1), generator=generator)]
    angle = torch.tensor(ANGLES, dtype=torch.float)[torch.randint(0, len(ANGLES), (steps, 1), generator=generator)]
    return torch.cat([jitters[0], jitters[1], scale, angle], dim=1)


def _apply_lucid(images: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    b, _, h, w = images.shape
    padded = F.pad(images, (PAD,) * 4, value=0.5)
    size_in = h + 2 * PAD
    size_out = size_in - sum(JITTER)
    shift = (params[:, 0:2] + params[:, 2:4]) * (2.0 / size_in)  # pixels -> normalized coordinates
    scale, angle = params[:, 4], params[:, 5] * (math.pi / 180)
    zoom = (size_out / size_in) / scale
    theta = _theta(zoom, angle, shift[:, 0], shift[:, 1], torch.ones_like(zoom))
    grid = F.affine_grid(theta.to(images.dtype), (b, 3, size_out, size_out), align_corners=False)
    return F.grid_sample(padded, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _draw_crops(recipe: Recipe, steps: int, generator: torch.Generator) -> torch.Tensor:
    """[steps, views, 5 (+6) (+3)]: crop side (fraction of the image), centre x and y
    (normalized, keeping the crop inside the frame), angle in radians, mirror
    sign; with a colour shift, a gain and an offset per channel; with noise, its
    standard deviation and where the view's window of the noise field lies (x, y
    in [0, 1)). Each group is drawn after the ones before it, so recipes without
    the later knobs draw what they always did."""
    shape = (steps, recipe.views)
    uniform = lambda: torch.rand(shape, generator=generator)  # noqa: E731
    smallest = _ramp(recipe.min_crop, recipe.min_crop_end, steps)[:, None]
    side = smallest + (1 - smallest) * uniform()
    centre_x, centre_y = ((2 * uniform() - 1) * (1 - side) for _ in range(2))
    angle = (2 * uniform() - 1) * math.radians(recipe.max_angle)
    mirror = torch.where(uniform() < 0.5, -1.0, 1.0) if recipe.flip else torch.ones(shape)
    params = torch.stack([side, centre_x, centre_y, angle, mirror], dim=2)
    if recipe.color_shift:
        bound = _ramp(recipe.color_shift, recipe.color_shift_end, steps)[:, None, None]
        colour = (2 * torch.rand((*shape, 6), generator=generator) - 1) * bound
        params = torch.cat([params, colour], dim=2)
    if recipe.noise:
        sigma = _ramp(recipe.noise, recipe.noise_end, steps)[:, None, None].expand(*shape, 1)
        params = torch.cat([params, sigma, torch.rand((*shape, 2), generator=generator)], dim=2)
    return params


def _ramp(start: float, end: float | None, steps: int) -> torch.Tensor:
    """[steps]: a knob's value at every step, `start` throughout or moving linearly
    from `start` at the first step to `end` at the last."""
    return torch.full((steps,), start) if end is None else torch.linspace(start, end, steps)


def _apply_crops(recipe: Recipe, images: torch.Tensor, params: torch.Tensor, size: int,
                 noise: torch.Tensor | None) -> torch.Tensor:
    b, views, count = params.shape
    flat = params.reshape(b * views, count)
    side, centre_x, centre_y, angle, mirror = flat[:, :5].unbind(1)
    theta = _theta(side, angle, centre_x, centre_y, mirror)
    grid = F.affine_grid(theta.to(images.dtype), (b * views, 3, size, size), align_corners=False)
    crops = F.grid_sample(images.repeat_interleave(views, dim=0), grid, mode="bilinear",
                          padding_mode="reflection", align_corners=False)
    rest = flat[:, 5:]
    if recipe.color_shift:
        gain, offset = (1 + rest[:, 0:3]).view(-1, 3, 1, 1), rest[:, 3:6].view(-1, 3, 1, 1)
        crops = ((crops - 0.5) * gain + 0.5 + offset).to(crops.dtype)
        rest = rest[:, 6:]
    if recipe.noise:
        crops = crops + _noise_windows(noise, rest, views, size).to(crops.dtype)
    return crops


def _noise_windows(fields: torch.Tensor, draws: torch.Tensor, views: int, size: int) -> torch.Tensor:
    """[N, 3, size, size]: for every view, its image's noise field [B, 3, 2 size, 2 size]
    seen through a size x size window placed by the view's draws (sigma, x, y),
    scaled by sigma."""
    n, device = draws.shape[0], fields.device
    image = torch.arange(n, device=device) // views
    span = torch.arange(size, device=device)
    top, left = ((draws[:, i] * (fields.shape[-1] - size + 1)).long() for i in (2, 1))
    rows, cols = top[:, None] + span, left[:, None] + span
    channel = torch.arange(3, device=device)
    windows = fields[image[:, None, None, None], channel[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]]
    return windows * draws[:, 0].view(-1, 1, 1, 1)


def _theta(zoom, angle, shift_x, shift_y, mirror) -> torch.Tensor:
    """[N, 2, 3] affine maps from output to input coordinates: rotate and zoom
    (zoom < 1 magnifies), mirror the output's x axis, then shift."""
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    return torch.stack([torch.stack([cos * mirror, -sin, shift_x], 1),
                        torch.stack([sin * mirror, cos, shift_y], 1)], 1)
