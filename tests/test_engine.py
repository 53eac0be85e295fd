"""The rendering engine on small models: objectives, batching, reproducibility."""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from atlas.core import kinds
from atlas.core.errors import AtlasError
from atlas.model.loading import from_module, load_model
from atlas.engine import objectives, param, transforms
from atlas.model.forward import activations
from atlas.engine.relus import redirected_relu_grad, redirected_relus
from atlas.engine.batching import render
from atlas.engine.render import render_batch
from atlas.core.settings import PARAMS, RECIPES, Recipe, Settings
from atlas.core.units import Unit
from tests.tinynet import TinyVGG

FAST = Settings(size=32, steps=12, precision="fp32")


def test_objective_increases_over_steps(tiny, cpu):
    (result,) = render_batch(tiny, [Unit("features.5", 3)], FAST.replace(steps=30), cpu)
    assert len(result.curve) == 30
    start, end = np.mean(result.curve[:5]), np.mean(result.curve[-5:])
    assert end > start + 0.1 * abs(start)
    assert result.final_objective > result.curve[0]


def test_negative_units_go_down(tiny, cpu):
    up, down = (render_batch(tiny, [Unit("features.5", 3, negative=n)], FAST.replace(steps=30), cpu)[0]
                for n in (False, True))
    # The curve is what the optimizer sees (the recipe's views), so it is what must fall;
    # the final image, seen whole, ends below where the views started and below the positive.
    assert down.curve[-1] < down.curve[0]
    assert down.final_objective < down.curve[0] < up.final_objective


def _silenced(channel: int):
    """TinyVGG whose features.2 channel is strongly negative on any input."""
    module = TinyVGG()
    with torch.no_grad():
        module.features[2].weight[channel].zero_()
        module.features[2].bias[channel] = -5.0
    return from_module(module, "silenced", weights="test")


def test_layer_objective_reads_pre_relu_output_despite_inplace_relu(cpu):
    model = _silenced(3)
    # torchvision-style in-place ReLU follows features.2; the hook must still see -5.
    x = torch.rand(2, 3, 32, 32)
    assert activations(model, x, {"features.2"})["features.2"][:, 3].max().item() == pytest.approx(-5.0)
    (result,) = render_batch(model, [Unit("features.2", 3)], FAST.replace(steps=2), cpu)
    assert result.final_objective == pytest.approx(-5.0, abs=1e-4)
    assert max(result.curve) < 0


def test_forward_stops_at_deepest_layer_needed(tiny):
    calls = []
    handle = tiny.module.pool.register_forward_hook(lambda *a: calls.append(1))
    try:
        acts = activations(tiny, torch.rand(1, 3, 32, 32), {"features.0", "features.5"})
        assert set(acts) == {"features.0", "features.5"} and not calls
        activations(tiny, torch.rand(1, 3, 32, 32), {tiny.output_layer})
        assert calls
    finally:
        handle.remove()


def test_redirected_relu_wakes_units_silent_on_noise():
    module = TinyVGG()
    with torch.no_grad():
        module.features[0].bias.fill_(-50.0)  # every ReLU after the first conv is off
    model = from_module(module, "dead", weights="test")
    objective = objectives.channel("features.2", 1)
    grads = []
    for redirect in (False, True):
        x = torch.rand(1, 3, 32, 32, requires_grad=True)
        with redirected_relus(model.module, redirect):
            objective(activations(model, x, objective.layers)).sum().backward()
        grads.append(x.grad.abs().sum().item())
    assert grads[0] == 0 and grads[1] > 0


@pytest.mark.parametrize("upper", [None, 6.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_redirected_relu_grad_is_lucids_rule_per_image(upper, dtype):
    x = torch.randn(3, 4, 5, 5).to(dtype).contiguous(memory_format=torch.channels_last)
    x[1] = -x[1].abs() - 0.1  # image 1: the ReLU is off everywhere, so it blocks every gradient
    if upper is not None:
        x[2, 0] = upper + 1  # image 2: saturated on one channel, open elsewhere
    grad = torch.randn_like(x)
    # Lucid's rule, written plainly: the ReLU's own gradient, except that an image it
    # blocks entirely gets every gradient but those pushing an off input further down.
    active = (x > 0) if upper is None else (x > 0) & (x < upper)
    relu_grad = grad * active
    redirected = torch.where((x <= 0) & (grad > 0), torch.zeros_like(grad), grad)
    blocked = relu_grad.flatten(1).abs().amax(1) == 0
    expected = torch.where(blocked.view(-1, 1, 1, 1), redirected, relu_grad)
    assert blocked.tolist() == [False, True, False]
    assert torch.equal(redirected_relu_grad(grad, x, upper), expected)


def test_unit_renders_the_same_alone_and_in_a_batch(tiny, cpu):
    unit = Unit("features.5", 7)
    (alone,) = render_batch(tiny, [unit], FAST, cpu)
    batch = render_batch(tiny, [Unit("features.5", 2), unit, Unit("features.5", 11)], FAST, cpu)
    inside = batch[1]
    assert inside.unit == unit
    assert np.abs(alone.images[0].astype(int) - inside.images[0].astype(int)).max() <= 1
    assert np.allclose(alone.curve, inside.curve, rtol=1e-4, atol=1e-4)


def test_same_settings_and_seed_give_the_same_image(tiny, cpu):
    first, second = (render_batch(tiny, [Unit("features.3", 1)], FAST, cpu)[0] for _ in range(2))
    assert np.array_equal(first.images[0], second.images[0])
    (other_seed,) = render_batch(tiny, [Unit("features.3", 1)], FAST.replace(seed=1), cpu)
    assert not np.array_equal(first.images[0], other_seed.images[0])


PHOTO = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(5))
# A value for every parameter any kind takes: a new kind whose parameters are not here fails below.
PARAMETERS = {"seed": 3, "weights": tuple(float(v) for v in torch.linspace(-1, 1, 16)), "photo": "a-photo",
              "power": 1.0, "direction": tuple(float(v) for v in torch.linspace(1, -1, 16))}


def unit_of_kind(name: str) -> Unit:
    """A unit of every registered kind on TinyVGG: class kinds on the logits, the rest on features.5."""
    entry = kinds.kind(name)
    return Unit("classifier.3" if entry.is_class else "features.5", 4 if entry.is_class else 1, name,
                params={p: PARAMETERS[p] for p in entry.params})


def test_every_kind_in_the_registry_has_a_builder():
    assert sorted(kinds.BUILDERS) == sorted(kinds.KINDS)


@pytest.mark.parametrize("unit", [unit_of_kind(name) for name in kinds.KINDS] + [
    Unit("features.5", 1, "channel", negative=True),
    Unit("features.5", 1, "channel", diversity=3),
    Unit("classifier.3", 4, "logit", diversity=2),
], ids=lambda unit: unit.variant)
def test_every_objective_kind_renders(tiny, cpu, unit):
    (result,) = render_batch(tiny, [unit], FAST, cpu, photos={"a-photo": PHOTO})
    assert result.error is None
    assert len(result.images) == unit.diversity
    for image in result.images:
        assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert np.isfinite(result.curve).all() and np.isfinite(result.final_objectives).all()
    assert (result.class_probability is not None) == unit.kind.is_class
    if result.class_probability is not None:
        assert 0 <= result.class_probability <= 1


def test_diversity_makes_images_differ_more_than_noise(tiny, cpu):
    (result,) = render_batch(tiny, [Unit("features.5", 1, diversity=2)], FAST.replace(steps=20), cpu)
    a, b = (img.astype(float) for img in result.images)
    assert np.abs(a - b).mean() > 1.0


def test_log_probability_is_the_logit_less_the_log_sum_exp(tiny):
    acts = activations(tiny, torch.rand(2, 3, 32, 32), {"classifier.3"})
    out = acts["classifier.3"].float()
    index = torch.tensor([4, 7])
    score = objectives.class_log_probability("classifier.3", index)(acts)
    expected = out[torch.arange(2), index] - out.logsumexp(1)
    assert torch.allclose(score, expected, atol=1e-5) and (score < 0).all()


def test_log_odds_is_log_p_over_one_minus_p_and_keeps_its_gradient(tiny):
    acts = activations(tiny, torch.rand(2, 3, 32, 32), {"classifier.3"})
    index = torch.tensor([4, 7])
    p = torch.softmax(acts["classifier.3"].double(), 1)[torch.arange(2), index]
    score = objectives.class_log_odds("classifier.3", index)(acts)
    assert torch.allclose(score.double(), (p / (1 - p)).log(), atol=1e-4)
    # Where the model is already sure, the target's logit still counts in full
    # (the log-softmax's gradient there is 1 - p, almost nothing).
    sure = torch.zeros(1, 10, requires_grad=True)
    sure_acts = {"out": sure + torch.tensor([[20.0] + [0.0] * 9])}
    objectives.class_log_odds("out", 0)(sure_acts).sum().backward()
    assert sure.grad[0, 0] == 1.0 and torch.allclose(sure.grad[0, 1:].sum(), torch.tensor(-1.0))


def test_objectives_compose(tiny):
    acts = activations(tiny, torch.rand(2, 3, 32, 32), {"features.5"})
    a, b = objectives.channel("features.5", 1), objectives.channel("features.5", 2)
    combined = 2 * a - b
    assert torch.allclose(combined(acts), 2 * a(acts) - b(acts))
    assert combined.layers == {"features.5"}
    per_image = objectives.channel("features.5", torch.tensor([1, 2]))(acts)
    assert torch.allclose(per_image, torch.stack([a(acts)[0], b(acts)[1]]))


@pytest.mark.parametrize("kind", PARAMS)
def test_parameterizations_start_apart_and_pass_gradients_to_each_image(kind):
    p = param.make(kind, 40)
    raw = torch.stack([p.init(torch.Generator().manual_seed(i)) for i in range(3)]).requires_grad_()
    images = p.to_image(raw)
    assert images.shape == (3, 3, 40, 40)
    assert not torch.equal(images[0], images[1])          # each image its own draw
    if kind != "phase":   # fourier and pixels start from faint noise around grey; phase at a photo's contrast
        assert abs(images.mean().item() - 0.5) < 0.02 and images.std().item() < 0.05
    images[1:, 0].mean().backward()                        # only images 1 and 2 are scored
    moved = raw.grad.flatten(1).abs().sum(1)
    assert moved[0] == 0 and (moved[1:] > 0).all()         # no image feels another's objective


def test_phase_images_keep_their_spectrum_whatever_the_phases():
    """MACO: the optimizer moves only phases, so every image, whatever its
    parameters, has the same amplitude spectrum, a grey mean and a photograph's contrast."""
    p = param.phase(64, 64)
    raw = torch.stack([p.init(torch.Generator().manual_seed(i)) for i in range(2)])
    raw[1] += 5 * torch.rand_like(raw[1])
    before_sigmoid = torch.logit(p.to_image(raw).double(), eps=1e-12)
    decorrelated = torch.einsum("bdhw,cd->bchw", before_sigmoid, param.COLOR_CORRELATION.double().inverse())
    # Columns 0 and w/2 of a real image's half spectrum are their own mirror: there
    # the real-image constraint, not the phase, decides part of the magnitude.
    spectra = torch.fft.rfft2(decorrelated, norm="ortho").abs()[..., 1:-1]
    assert torch.allclose(spectra[0], spectra[1], rtol=1e-3, atol=1e-3)
    assert decorrelated.mean(dim=(2, 3)).abs().max() < 1e-3
    assert 0.15 < p.to_image(raw).std().item() < 0.3


def test_fourier_init_is_low_contrast_grey_with_structure():
    p = param.fourier(64, 64)
    image = p.to_image(p.init(torch.Generator().manual_seed(0))[None])
    assert abs(image.mean().item() - 0.5) < 0.05 and image.std().item() > 0


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_transforms_are_drawn_per_image_and_differentiable(name):
    recipe = RECIPES[name]
    images = torch.rand(4, 3, 32, 32, requires_grad=True)
    views = torch.stack([transforms.draw(recipe, 5, torch.Generator().manual_seed(i)) for i in range(4)])
    assert views.shape[:3] == (4, 5, recipe.views)
    out = transforms.apply(recipe, images, views[:, 0])
    side = transforms.output_size(recipe, 32)
    assert out.shape == (4 * recipe.views, 3, side, side)
    assert not torch.equal(views[0], views[1])
    out.sum().backward()
    assert images.grad.abs().sum() > 0


def test_identity_lucid_transform_keeps_the_image():
    images = torch.rand(1, 3, 32, 32)
    identity = torch.tensor([[(d - 1) / 2 for d in (8, 8, 4, 4)] + [1.0, 0.0]]) * torch.tensor([0, 0, 0, 0, 1, 1.0])
    out = transforms.apply(RECIPES["lucid"], images, identity[:, None])
    crop = (out.shape[-1] - 32) // 2
    assert torch.allclose(out[..., crop:crop + 32, crop:crop + 32], images, atol=1e-5)


def test_crop_views_keep_mirror_and_magnify_the_image():
    recipe = Recipe("crops", views=3, min_crop=0.5, flip=True)
    images = torch.rand(1, 3, 32, 32)
    whole, mirrored, half = [1.0, 0, 0, 0, 1.0], [1.0, 0, 0, 0, -1.0], [0.5, -0.5, -0.5, 0, 1.0]
    out = transforms.apply(recipe, images, torch.tensor([[whole, mirrored, half]]))
    assert torch.allclose(out[0], images[0], atol=1e-5)
    assert torch.allclose(out[1], images[0].flip(-1), atol=1e-5)
    # The top-left quarter magnified 2x (its last row and column also blend in
    # the pixels beyond the quarter, which a resize of the quarter alone cannot see).
    upscaled = F.interpolate(images[..., :16, :16], scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(out[2, :, :-1, :-1], upscaled[0, :, :-1, :-1], atol=1e-5)


def test_crop_views_are_resampled_to_the_view_scale():
    recipe = Recipe("crops", views=2, view_scale=0.75)
    draws = transforms.draw(recipe, 1, torch.Generator().manual_seed(0))  # [1 step, 2 views, P]: one image
    assert transforms.apply(recipe, torch.rand(1, 3, 32, 32), draws).shape == (2, 3, 24, 24)


def test_crop_draws_stay_in_the_recipe_ranges():
    recipe = RECIPES["views"]
    side, cx, cy, angle, mirror = transforms.draw(recipe, 200, torch.Generator().manual_seed(1)).unbind(-1)
    assert side.min() >= recipe.min_crop and side.max() <= 1
    assert ((cx.abs() <= 1 - side + 1e-6) & (cy.abs() <= 1 - side + 1e-6)).all()
    assert angle.abs().max() <= math.radians(recipe.max_angle)
    assert set(mirror.unique().tolist()) == {-1.0, 1.0}


def test_views_recipe_renders_reproducibly_and_differently_from_lucid(tiny, cpu):
    views = FAST.replace(recipe="views", steps=6)
    units = [Unit("features.5", 1), Unit("features.5", 2)]
    alone = render_batch(tiny, units[:1], views, cpu)[0]
    together = render_batch(tiny, units, views, cpu)[0]
    lucid = render_batch(tiny, units[:1], views.replace(recipe="lucid"), cpu)[0]
    assert np.array_equal(alone.images[0], together.images[0])
    assert not np.array_equal(alone.images[0], lucid.images[0])
    assert len(alone.curve) == 6 and np.isfinite(alone.curve).all()


def test_views_recipe_keeps_diversity_copies_apart(tiny, cpu):
    result = render_batch(tiny, [Unit("features.5", 1, diversity=2)], FAST.replace(recipe="views", steps=6), cpu)[0]
    assert len(result.images) == 2 and not np.array_equal(result.images[0], result.images[1])


def test_render_yields_batches_grouped_by_layer(tiny, cpu):
    units = [Unit("features.0", 1), Unit("features.5", 1), Unit("features.0", 2), Unit("classifier.3", 0, "logit")]
    batches = list(render(tiny, units, FAST.replace(steps=2), dataclasses.replace(cpu, batch_size=8)))
    assert [[r.unit for r in batch] for batch in batches] == [[units[0], units[2]], [units[1]], [units[3]]]


def test_bad_names_give_clear_errors(tiny):
    with pytest.raises(AtlasError, match="unknown model 'vgg17'.*did you mean"):
        load_model("vgg17")
    with pytest.raises(AtlasError, match="no layer 'features.55'.*did you mean"):
        tiny.layer("features.55")
    with pytest.raises(AtlasError, match="unknown objective"):
        Unit("features.0", 1, "banana")
    with pytest.raises(AtlasError, match="cannot import model factory"):
        load_model("tests.tinynet:nope")


def test_settings_reject_nonsense():
    for bad in ({"size": 0}, {"size": 100_000}, {"steps": 0}, {"lr": -1}, {"param": "wavelet"}):
        with pytest.raises(AtlasError):
            Settings(**bad)
