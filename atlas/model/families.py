"""Architecture families: one entry each, saying how to recognise it, its input rule where
torchvision's `meta` alone does not say, and which layers a build selects by default.

Adding a family is adding an entry to `FAMILIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .rules import InputRule

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


