"""Small models for tests: real code paths at a fraction of a second per render.

`atlas build tests.tinynet:tiny_vgg` loads one by import path, as users load
their own architectures.
"""

from torch import nn


class TinyVGG(nn.Module):
    """VGG-shaped: `features.N` convs followed by in-place ReLUs, `classifier.3` logits."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(inplace=True),
                                        nn.Linear(32, classes))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


def tiny_vgg() -> nn.Module:
    return TinyVGG()


NAMED_CLASSES = ("red thing", "green thing", "blue thing", "grey thing", "dark thing", "light thing", "striped thing",
                 "round thing", "square thing", "small thing")


def tiny_vgg_named():
    """TinyVGG with class names and a 32 px evaluation view, for pages that name classes."""
    from atlas.model.spec import ModelSpec

    return TinyVGG(), ModelSpec(crop_size=32, resize_size=36, class_names=NAMED_CLASSES)


def shown_at(model, side: int):
    """`model` with natural images shown to it at `side` px (its evaluation crop), the
    resize keeping the model's own ratio: dataset passes over small photos stay fast."""
    import dataclasses

    spec = model.spec
    return dataclasses.replace(model, spec=dataclasses.replace(
        spec, crop_size=side, resize_size=round(side * spec.resize_size / spec.crop_size)))


def tiny_vgg_dead():
    """TinyVGG whose `features.2` channel 3 has zero weights and bias: a dead unit, as
    pruned or collapsed channels are in real models (Lite0's `_conv_stem` unit 11)."""
    import torch

    model = TinyVGG()
    with torch.no_grad():
        model.features[2].weight[3].zero_()
        model.features[2].bias[3].zero_()
    return model
