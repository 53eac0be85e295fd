"""Model specs: everything atlas needs to know about a classifier besides its weights.

A `ModelSpec` holds the preprocessing (mean, std, evaluation resize and crop),
the class names, and the `InputRule` that says which image sides the model
accepts. torchvision models get theirs from their weights' `meta` and
`transforms()`, as torchvision's own reference scripts do; the offline
EfficientNet-Lite models and `package.module:factory` models get one too (a
factory may return `(module, spec)`).

`model_input` is the one way an image becomes what the model accepts: resample
to the nearest side the rule allows, then normalize. Rendering (every step's
views and the final scoring pass), dataset examples and benchmarks all call it,
so `--size` stays the side of the picture on the site whatever the model needs.

Input rules are `atlas.model.rules`; architecture families, `atlas.model.families`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import AtlasError
from .families import family_of
from .rules import FREE, InputRule, at_least

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The smallest picture worth resampling to any model's input.
MIN_PICTURE = 16


@dataclass(frozen=True)
class ModelSpec:
    """Preprocessing, class names and input rule of one model."""

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    rule: InputRule = FREE
    crop_size: int = 224  # evaluation: centre crop of this side...
    resize_size: int = 256  # ...after resizing the shorter side to this
    class_names: tuple[str, ...] | None = field(default=None, repr=False)

    def check_picture(self, size: int, model: str) -> None:
        """A one-line error for a picture side no resampling makes sense of."""
        if size < MIN_PICTURE:
            raise AtlasError(f"--size {size} is too small for {model}, which takes {self.rule} inputs: "
                             f"use at least {max(MIN_PICTURE, min(self.rule.side, 224))} px")

    def card(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "input_rule": str(self.rule),
                "crop_size": self.crop_size, "resize_size": self.resize_size}


def model_input(spec: ModelSpec, images: torch.Tensor) -> torch.Tensor:
    """Images in [0, 1], `[B, 3, H, W]`, as the model takes them: resampled to the
    side its rule allows (a no-op where it already does), then normalized."""
    side = images.shape[-1]
    wanted = spec.rule.model_size(side)
    if wanted != side or images.shape[-2] != side:
        images = F.interpolate(images, size=(wanted, wanted), mode="bilinear", align_corners=False,
                               antialias=wanted < side)
    mean, std = _stats(spec.mean, spec.std, images.device, images.dtype)
    return (images - mean) / std


@functools.lru_cache(maxsize=32)
def _stats(mean, std, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std as [1, 3, 1, 1] tensors in the images' dtype, made once per device (no
    copy per step, nothing to move inside a CUDA graph); ordinary tensors even if first
    asked for under inference mode."""
    with torch.inference_mode(False):
        return (torch.tensor(mean, device=device, dtype=dtype).view(1, 3, 1, 1),
                torch.tensor(std, device=device, dtype=dtype).view(1, 3, 1, 1))


# --- torchvision ----------------------------------------------------------------

def torchvision_spec(weights, module: nn.Module) -> ModelSpec:
    """The spec of a torchvision classifier from its weights enum (`meta` and
    `transforms()`) and the built module (a random ViT-H is 224 px, its SWAG
    weights 518: the module decides the rule)."""
    transform = weights.transforms()
    family = family_of(module)
    rule = family.rule(module) if family.rule else at_least(int(weights.meta.get("min_size", (1, 1))[0]))
    crop = int(transform.crop_size[0])
    resize = int(transform.resize_size[0])
    if not rule.allowed(crop):
        resize, crop = round(resize * rule.model_size(crop) / crop), rule.model_size(crop)
    return ModelSpec(mean=tuple(transform.mean), std=tuple(transform.std), rule=rule, crop_size=crop,
                     resize_size=resize, class_names=tuple(weights.meta["categories"]))
