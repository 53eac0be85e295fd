"""Layer layouts, input rules and model specs, on small synthetic models.

Channel objectives must select a channel on every layout: on channels-last
maps (Swin, ConvNeXt's MLPs) not a row of the image, on tokens (ViT) not a
token, and never the CLS token.
"""

import numpy as np
import pytest
import torch
from torch import nn

from atlas.core import layouts
from atlas.core.errors import AtlasError
from atlas.model.loading import from_module, load_model
from atlas.model.classifier import normalize
from atlas.engine import objectives
from atlas.model.forward import activations
from atlas.engine.render import diversity_layer, render_batch
from atlas.core.settings import Settings
from atlas.model.spec import FREE, InputRule, ModelSpec, model_input
from atlas.core.units import Unit
from tests.tinytransformers import TINY_VIT_SIZE

FAST = Settings(size=32, steps=3, precision="fp32")


@pytest.fixture(scope="module")
def vit():
    return load_model("tests.tinytransformers:tiny_vit", "random")


@pytest.fixture(scope="module")
def swin():
    return load_model("tests.tinytransformers:tiny_swin", "random")


def _raw(model, name, x):
    """The layer's output as the module returns it, before any layout."""
    module = dict(model.module.named_modules())[name]
    seen = []
    handle = module.register_forward_hook(lambda m, i, out: seen.append(out))
    try:
        with torch.no_grad():
            model.module(x)
    finally:
        handle.remove()
    return seen[0]


class ChannelsLast(nn.Module):
    """A conv, then a channels-last Linear: [B, 8, 8, 5] has 5 channels, not 8 rows."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, stride=4, padding=1)
        self.mlp = nn.Linear(6, 5)
        self.act = nn.GELU()
        self.head = nn.Linear(5, 3)

    def forward(self, x):
        maps = self.act(self.mlp(self.conv(x).permute(0, 2, 3, 1)))
        return self.head(maps.mean((1, 2)))


def test_layout_to_maps_moves_channels_and_drops_prefix_tokens():
    nhwc = torch.arange(2 * 3 * 4 * 5.0).view(2, 3, 4, 5)
    assert torch.equal(layouts.NHWC.to_maps(nhwc)[:, 2], nhwc[..., 2])
    tokens = torch.randn(2, 1 + 9, 7)
    maps = layouts.tokens(1).to_maps(tokens)
    assert maps.shape == (2, 7, 3, 3)
    assert torch.equal(maps[:, 4, 1, 2], tokens[:, 1 + 1 * 3 + 2, 4])  # row-major patch grid
    assert layouts.FLAT.to_maps(tokens[:, 0]).shape == (2, 7)


def test_catalog_reports_channels_of_channels_last_layers(cpu):
    model = from_module(ChannelsLast(), "channels-last", weights="test", spec=ModelSpec(crop_size=32))
    mlp, act = model.layer("mlp"), model.layer("act")
    assert (mlp.layout, mlp.channels) == (layouts.NHWC, 5) and (act.layout, act.channels) == (layouts.NHWC, 5)
    x = torch.rand(2, 3, 32, 32)
    raw = _raw(model, "act", x)
    assert raw.shape == (2, 8, 8, 5)
    acts = activations(model, x, {"act"})
    score = objectives.channel("act", 2)(acts)
    assert torch.allclose(score, raw[..., 2].mean((1, 2)))  # channel 2, not row 2
    assert not torch.allclose(score, raw[:, 2].mean((1, 2)))


def test_swin_catalog_is_channels_last_with_true_channel_counts(swin):
    hidden = swin.layer("features.1.0.mlp.1")  # GELU between the MLP's Linears: 4 x 8 channels
    assert hidden.layout == layouts.NHWC and hidden.channels == 32
    assert swin.layer("features.1.0").channels == 8
    defaults = {l.name for l in swin.select_layers(None)}
    assert {"features.1.0", "features.1.0.mlp.1", "features.3.0", "features.3.0.mlp.1"} <= defaults
    x = torch.rand(2, 3, 32, 32)
    raw = _raw(swin, "features.1.0.mlp.1", x)
    score = objectives.channel("features.1.0.mlp.1", torch.tensor([3, 30]))(
        activations(swin, normalize(swin, x), {"features.1.0.mlp.1"}))
    expected = torch.stack([raw[0, ..., 3].mean(), raw[1, ..., 30].mean()])
    raw_normalized = _raw(swin, "features.1.0.mlp.1", normalize(swin, x))
    expected = torch.stack([raw_normalized[0, ..., 3].mean(), raw_normalized[1, ..., 30].mean()])
    assert torch.allclose(score, expected, atol=1e-6)


def test_vit_catalog_lists_blocks_and_their_mlp_hidden_units(vit):
    hidden = vit.layer("encoder.layers.encoder_layer_0.mlp.1")
    assert hidden.layout == layouts.tokens(1) and hidden.channels == 32 and hidden.default
    block = vit.layer("encoder.layers.encoder_layer_1")
    assert block.channels == 16 and block.default
    assert [l.name for l in vit.select_layers(None)] == [
        "encoder.layers.encoder_layer_0.mlp.1", "encoder.layers.encoder_layer_0",
        "encoder.layers.encoder_layer_1.mlp.1", "encoder.layers.encoder_layer_1"]
    assert vit.output_layer == "heads.head" and vit.layer("heads.head").channels == 10
    assert not vit.layer("conv_proj").default  # the patch embedding is no block


def test_token_channel_objective_is_the_patch_mean_without_cls(vit):
    name = "encoder.layers.encoder_layer_0.mlp.1"
    x = normalize(vit, torch.rand(2, 3, 32, 32))
    raw = _raw(vit, name, x)
    assert raw.shape == (2, 1 + 16, 32)
    acts = activations(vit, x, {name})
    index = torch.tensor([5, 17])
    score = objectives.channel(name, index)(acts)
    assert torch.allclose(score, torch.stack([raw[0, 1:, 5].mean(), raw[1, 1:, 17].mean()]), atol=1e-6)
    # CLS does not count: change only the CLS token's activation and the score stays.
    module = dict(vit.module.named_modules())[name]
    bump = module.register_forward_hook(lambda m, i, out: torch.cat([out[:, :1] + 100.0, out[:, 1:]], 1))
    try:
        assert torch.allclose(objectives.channel(name, index)(activations(vit, x, {name})), score, atol=1e-6)
        with torch.no_grad():
            bumped = _raw(vit, name, x)
        assert bumped[:, 0].sub(raw[:, 0]).abs().min() > 99
    finally:
        bump.remove()
    # Neuron: the centre patch token (row 2, column 2 of the 4x4 grid), not token 2.
    centre = objectives.neuron(name, index)(acts)
    assert torch.allclose(centre, torch.stack([raw[0, 1 + 2 * 4 + 2, 5], raw[1, 1 + 2 * 4 + 2, 17]]), atol=1e-6)


def test_token_units_render_with_gradients_deepdream_and_diversity(vit, cpu):
    hidden = "encoder.layers.encoder_layer_1.mlp.1"
    up = render_batch(vit, [Unit(hidden, 3), Unit(hidden, 9)], FAST.replace(steps=20), cpu)
    assert all(result.error is None for result in up)
    assert up[0].final_objective > up[0].curve[0] + 0.1  # a GELU unit climbs; unit 9 starts near dead
    (dream,) = render_batch(vit, [Unit("encoder.layers.encoder_layer_0", 0, "deepdream")], FAST, cpu)
    assert dream.error is None and np.isfinite(dream.curve).all()
    (spread,) = render_batch(vit, [Unit("heads.head", 1, "logit", diversity=2)], FAST, cpu)
    assert spread.error is None and len(spread.images) == 2
    assert diversity_layer(vit, Unit("heads.head", 1, "logit")) == "encoder.layers.encoder_layer_1"
    assert diversity_layer(vit, Unit(hidden, 1)) == hidden


def test_input_rules():
    exactly, multiple, least = InputRule("exactly", 224), InputRule("multiple", 224), InputRule("at_least", 75)
    assert [exactly.model_size(s) for s in (16, 168, 512)] == [224, 224, 224]
    assert exactly.allowed(224) and not exactly.allowed(168)
    assert [multiple.model_size(s) for s in (100, 224, 400, 500)] == [224, 224, 448, 448]
    assert multiple.allowed(448) and not multiple.allowed(300)
    assert [least.model_size(s) for s in (64, 75, 300)] == [75, 75, 300]
    assert FREE.model_size(13) == 13 and FREE.allowed(1)
    assert [str(r) for r in (exactly, multiple, least, FREE)] == [
        "exactly 224 px", "a multiple of 224 px", "at least 75 px", "any size"]
    assert hash(exactly) == hash(InputRule("exactly", 224))


def test_model_input_resamples_only_when_the_rule_says_so():
    spec = ModelSpec()
    x = torch.rand(2, 3, 24, 24)
    mean, std = torch.tensor(spec.mean).view(1, 3, 1, 1), torch.tensor(spec.std).view(1, 3, 1, 1)
    assert torch.equal(model_input(spec, x), (x - mean) / std)  # convnets: bit for bit as before
    fixed = ModelSpec(rule=InputRule("exactly", TINY_VIT_SIZE))
    assert model_input(fixed, x).shape == (2, 3, 32, 32)
    x.requires_grad_()
    model_input(fixed, x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_views_reach_a_fixed_size_model_at_any_picture_size(vit, cpu):
    # The default recipe shows the model 3/4-size crops; a ViT takes exactly 32 px.
    for size in (24, 48):
        (result,) = render_batch(vit, [Unit("encoder.layers.encoder_layer_1", 2)], FAST.replace(size=size), cpu)
        assert result.error is None and result.images[0].shape == (size, size, 3)


def test_a_size_the_model_cannot_take_is_a_one_line_error(vit):
    with pytest.raises(AtlasError, match="exactly 32 px") as caught:
        activations(vit, torch.rand(1, 3, 24, 24), {"encoder.layers.encoder_layer_0"})
    assert "\n" not in str(caught.value)
    with pytest.raises(AtlasError, match="too small for tiny.*exactly 32 px"):
        vit.spec.check_picture(8, "tiny")
    with pytest.raises(AtlasError, match="between 16"):
        Settings(size=8)


def test_factory_spec_and_card(vit, tiny):
    assert vit.spec.rule == InputRule("exactly", 32) and vit.class_names[1] == "class 1"
    assert vit.input_size == 32
    card = vit.card()
    assert card["input_rule"] == "exactly 32 px"
    assert {"layout": "tokens+1", "default": True}.items() <= card["layers"][
        [l["name"] for l in card["layers"]].index("encoder.layers.encoder_layer_0")].items()
    assert tiny.spec == ModelSpec() and tiny.mean == ModelSpec().mean
    assert [l.name for l in tiny.select_layers(None)] == ["features.0", "features.2", "features.5"]


def test_layers_command_shows_layouts_and_why_the_defaults():
    from click.testing import CliRunner

    from atlas.cli import main

    result = CliRunner().invoke(main, ["layers", "tests.tinytransformers:tiny_vit", "--weights", "random"])
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.strip()}
    assert "tokens+1" in lines["encoder.layers.encoder_layer_0.mlp.1"]
    assert lines["encoder.layers.encoder_layer_0.mlp.1"].split()[-2:] == ["32", "*"]
    assert lines["heads.head"].rstrip().endswith("◆")
    assert "MLP hidden activation" in result.output and "input: exactly 32 px" in result.output


def test_dataset_examples_on_token_layers(vit, cpu, tmp_path):
    from PIL import Image

    from atlas.examples.job import find_examples

    rng = np.random.default_rng(0)
    (tmp_path / "data").mkdir()
    for i in range(5):
        Image.fromarray(rng.integers(0, 256, size=(40, 50, 3), dtype=np.uint8)).save(tmp_path / "data" / f"{i}.png")
    block = "encoder.layers.encoder_layer_1"
    results, _ = find_examples(vit, [block, "heads.head"], tmp_path / "data", root=tmp_path / "cache", runtime=cpu, k=2)
    assert len(results[block]["channels"]) == 16 and len(results["heads.head"]["channels"]) == 10
    for shown in results[block]["channels"]:
        assert len(shown) == 2
        left, top, right, bottom = shown[0]["box"]
        assert 0 <= left < right <= TINY_VIT_SIZE and 0 <= top < bottom <= TINY_VIT_SIZE
