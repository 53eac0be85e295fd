"""The model contract, in the spirit of torchvision's own test_models.py: every
classification builder in `torchvision.models` works through atlas on random weights.

How each model is covered (the CI machine has 2 cores; all 80 whole would take
minutes and ~25 GB of weights):

* Catalog, every builder: the real architecture is built on the `meta` device
  (no weights, no arithmetic) and catalogued at its full evaluation size. It must
  list at least one default hidden layer with positions (a map or patch tokens),
  every Conv2d / Linear / LayerNorm / BatchNorm layer must report the channel
  count of its own module (not a spatial side), and the logits must be 1000 wide.
* Build, "whole" tier: `load_model(name, "random")` as the CLI does, then one
  default hidden unit and one class logit rendered for 2 steps at the model's
  default size (its evaluation crop) must end finite. Whole: every builder with at
  most WHOLE_PARAMS parameters and WHOLE_GFLOPS at that size, plus the smallest
  member of each model class that has none so small (vgg11, alexnet, vit_b_32,
  maxvit_t, efficientnet_v2_s, regnet_x_8gf...), so every torchvision model module
  (VGG, ResNet, ViT, Swin, MaxVit, ConvNeXt, EfficientNet, RegNet, ...) renders
  whole at least once.
* The larger builders (vgg16, vit_h_14, regnet_y_128gf, convnext_large, ...) share
  their class's code path with that member and get their own catalog checked on
  `meta`. `ATLAS_CONTRACT=all` renders every builder whole (slow; for a GPU box).
"""

import os

import pytest
import torch
import torchvision.models as tvm
from torch import nn

from atlas.model.catalog import catalog, prepare
from atlas.model.loading import load_model, torchvision_module
from atlas.engine.render import render_batch
from atlas.core.settings import Settings
from atlas.model.spec import torchvision_spec
from atlas.core.units import Unit

WHOLE_PARAMS = 30e6
WHOLE_GFLOPS = 6.0
BUILDERS = tvm.list_models(module=tvm)


def _meta(name):
    return tvm.get_model_weights(name).DEFAULT.meta


def _class_of(name) -> str:
    """The torchvision module that defines the builder's model class (resnet: ResNet
    for resnet*, resnext* and wide_resnet*)."""
    return tvm.get_model_builder(name).__module__


def _small(name) -> bool:
    meta = _meta(name)
    return meta["num_params"] <= WHOLE_PARAMS and meta["_ops"] <= WHOLE_GFLOPS


def _whole_tier() -> list[str]:
    if os.environ.get("ATLAS_CONTRACT") == "all":
        return BUILDERS
    chosen = [name for name in BUILDERS if _small(name)]
    covered = {_class_of(name) for name in chosen}
    by_class: dict[str, list[str]] = {}
    for name in BUILDERS:
        by_class.setdefault(_class_of(name), []).append(name)
    for cls, names in sorted(by_class.items()):
        if cls not in covered:
            chosen.append(min(names, key=lambda n: _meta(n)["_ops"] * max(1.0, _meta(n)["num_params"] / 30e6)))
    return sorted(chosen)


WHOLE = _whole_tier()


def _expected_channels(module: nn.Module) -> int | None:
    if isinstance(module, nn.Conv2d):
        return module.out_channels
    if isinstance(module, nn.Linear):
        return module.out_features
    if isinstance(module, nn.LayerNorm):
        return module.normalized_shape[-1]
    if isinstance(module, nn.BatchNorm2d):
        return module.num_features
    return None


def test_every_model_class_has_a_whole_build():
    assert len(BUILDERS) >= 80
    assert {_class_of(n) for n in WHOLE} == {_class_of(n) for n in BUILDERS}


@pytest.mark.parametrize("name", BUILDERS)
def test_catalog(name):
    module = prepare(torchvision_module(name, "meta"))
    spec = torchvision_spec(tvm.get_model_weights(name).DEFAULT, module)
    layers, output = catalog(module, spec)
    modules = dict(module.named_modules())
    by_name = {layer.name: layer for layer in layers}
    assert by_name[output].channels == 1000
    hidden = [l for l in layers if l.default]
    assert hidden and all(l.layout.spatial and l.name != output for l in hidden)
    for layer in layers:
        expected = _expected_channels(modules.get(layer.name))
        if expected is not None:
            assert layer.channels == expected, (layer.name, layer.layout)
    assert spec.rule.allowed(spec.crop_size) and spec.class_names and len(spec.class_names) == 1000


@pytest.mark.slow
@pytest.mark.parametrize("name", WHOLE)
def test_whole_build_renders_a_hidden_unit_and_a_class(name, cpu):
    model = load_model(name, "random")
    hidden = next(l for l in model.layers if l.default)
    settings = Settings(size=model.spec.crop_size, steps=2, precision="fp32")
    with torch.random.fork_rng(devices=[]):
        results = (render_batch(model, [Unit(hidden.name, hidden.channels - 1)], settings, cpu)
                   + render_batch(model, [Unit(model.output_layer, 1, "logit")], settings, cpu))
    for result in results:
        assert result.error is None, (result.unit, result.error)
        assert result.images[0].shape == (settings.size, settings.size, 3)
