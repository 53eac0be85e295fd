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

A `Family` is one entry per architecture family: which module classes belong to
it, its input rule when `meta` alone does not say, and which layers a build
selects by default. Adding a family is adding an entry to `FAMILIES`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .errors import AtlasError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The smallest picture worth resampling to any model's input.
MIN_PICTURE = 16


@dataclass(frozen=True)
class RuleKind:
    """One kind of input rule: which sides it allows, the allowed side nearest to a
    wanted one, and how it reads. `side` is the rule's number."""
    allowed: Callable[[int, int], bool]
    nearest: Callable[[int, int], int]
    text: Callable[[int], str]


# One entry per kind of rule; a model spec names its rule by the entry's name.
RULE_KINDS: dict[str, RuleKind] = {
    "free": RuleKind(lambda size, side: size >= side, lambda size, side: max(size, side),
                     lambda side: f"at least {side} px" if side > 1 else "any size"),
    "at_least": RuleKind(lambda size, side: size >= side, lambda size, side: max(size, side),
                         lambda side: f"at least {side} px" if side > 1 else "any size"),
    "exactly": RuleKind(lambda size, side: size == side, lambda size, side: side, lambda side: f"exactly {side} px"),
    "multiple": RuleKind(lambda size, side: size >= side and size % side == 0,
                         lambda size, side: max(1, round(size / side)) * side,
                         lambda side: f"a multiple of {side} px"),
}


@dataclass(frozen=True)
class InputRule:
    """Which square image sides a model accepts: a kind of rule (RULE_KINDS) and its number."""

    kind: str = "free"
    side: int = 1

    def __post_init__(self):
        if self.kind not in RULE_KINDS or self.side < 1:
            raise ValueError(f"bad input rule {self.kind} {self.side}")

    @property
    def free(self) -> bool:
        """Whether every side is allowed (nothing to check a picture size against)."""
        return self.kind == "free"

    def allowed(self, size: int) -> bool:
        return RULE_KINDS[self.kind].allowed(size, self.side)

    def model_size(self, size: int) -> int:
        """The allowed side nearest to `size` (never smaller than the rule's minimum)."""
        return RULE_KINDS[self.kind].nearest(size, self.side)

    def __str__(self) -> str:
        return RULE_KINDS[self.kind].text(self.side)


FREE = InputRule()


def at_least(side: int) -> InputRule:
    return InputRule("at_least", side) if side > 1 else FREE


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


# --- families -----------------------------------------------------------------

CONV_WHY = "conv layers: each channel is one learned filter's response map"
BLOCKS_WHY = ("each transformer block's MLP hidden activation (after its GELU, the units Ghiasi et al. 2022 "
              "found most interpretable) and each block's output")


@dataclass(frozen=True)
class Family:
    """An architecture family: how to recognise it and what a build selects by default."""

    name: str
    classes: tuple[str, ...]  # class names of the whole model's module
    # Class names of its transformer blocks. Empty: default = every conv layer;
    # else default = each block's output and its MLP's hidden activation.
    blocks: tuple[str, ...] = ()
    # The input rule from the built module, where torchvision's meta min_size is not the whole story.
    rule: Callable[[nn.Module], InputRule] | None = None

    @property
    def why(self) -> str:
        return BLOCKS_WHY if self.blocks else CONV_WHY


def _maxvit_rule(module: nn.Module) -> InputRule:
    # Every stage's map must split into partition_size windows: the stem and each
    # of the stages halve the side, so the image side is a multiple of 2**(stages+1) * p.
    return InputRule("multiple", module.partition_size * 2 ** (len(module.blocks) + 1))


FAMILIES: tuple[Family, ...] = (
    Family("vit", ("VisionTransformer",), blocks=("EncoderBlock",),
           rule=lambda module: InputRule("exactly", module.image_size)),  # a fixed-size assert
    Family("swin", ("SwinTransformer",), blocks=("SwinTransformerBlock", "SwinTransformerBlockV2")),
    Family("maxvit", ("MaxVit",), rule=_maxvit_rule),
    # Generic convnets: VGG, ResNet, Inception, EfficientNet, ConvNeXt, RegNet, ...
    Family("convnet", ()),
)


def family_of(module: nn.Module) -> Family:
    name = type(module).__name__
    return next((f for f in FAMILIES if name in f.classes), FAMILIES[-1])


def default_layers(family: Family, module: nn.Module, layers) -> set[str]:
    """Names of the layers a build renders when the user names none."""
    if not family.blocks:
        return {layer.name for layer in layers if layer.kind == "conv"}
    listed = {layer.name: layer for layer in layers}
    chosen = set()
    for name, block in module.named_modules():
        if type(block).__name__ not in family.blocks:
            continue
        if name in listed:
            chosen.add(name)
        hidden = [l for l in layers if l.name.startswith(f"{name}.mlp.") and l.type in ACTIVATIONS]
        if hidden:
            chosen.add(min(hidden, key=lambda l: l.position).name)
    return chosen


ACTIVATIONS = ("GELU", "ReLU", "ReLU6", "SiLU", "Hardswish", "QuickGELU")


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
