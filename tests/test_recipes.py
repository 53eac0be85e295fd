"""Recipe knobs beyond the named recipes: crop-size schedules, colour shifts, pixel noise, step
sizes and their schedules (per kind of unit), optimizers."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from atlas.engine import transforms
from atlas.engine.render import learning_rates, render_batch
from atlas.core.settings import RECIPES, Settings
from atlas.core.units import Unit

VIEWS = RECIPES["views"]


def _draw(recipe, steps=200, seed=0):
    return transforms.draw(recipe, steps, torch.Generator().manual_seed(seed))


def test_crop_schedule_moves_the_smallest_crop_from_start_to_end():
    params = _draw(replace(VIEWS, min_crop=1.0, min_crop_end=0.3), steps=400)
    sides = params[..., 0]
    assert torch.allclose(sides[0], torch.ones_like(sides[0]))  # whole frame at the first step
    late = sides[-50:]
    assert late.min() >= 0.3 - 1e-6 and late.min() < 0.45  # small crops appear late
    assert sides[:50].min() > 0.85  # and not early


def test_colour_shift_draws_after_the_geometry_and_changes_colours_only():
    plain, shifted = _draw(VIEWS), _draw(replace(VIEWS, color_shift=0.1))
    assert shifted.shape[-1] == plain.shape[-1] + 6
    assert torch.equal(shifted[..., :5], plain[..., :5])  # the same crops as without the shift
    assert shifted[..., 5:].abs().max() <= 0.1 and shifted[..., 5:].abs().max() > 0.05

    image = torch.rand(1, 3, 32, 32)
    recipe = replace(VIEWS, color_shift=0.1)
    params = _draw(recipe, steps=1)[None, 0]
    params[..., 5:] = 0  # no shift: the same crops as the plain recipe
    same = transforms.apply(recipe, image, params)
    assert torch.allclose(same, transforms.apply(VIEWS, image, params[..., :5]))
    params[..., 8:11] = 0.1  # an offset of 0.1 on every channel
    moved = transforms.apply(recipe, image, params)
    assert torch.allclose(moved - same, torch.full_like(same, 0.1), atol=1e-5)


def test_colour_shift_can_fade_to_nothing_over_the_run():
    fixed, fading = _draw(replace(VIEWS, color_shift=0.1)), _draw(replace(VIEWS, color_shift=0.1, color_shift_end=0.0))
    assert torch.equal(fading[..., :5], fixed[..., :5])  # the same crops
    assert torch.allclose(fading[0, :, 5:], fixed[0, :, 5:])  # the full shift at the first step
    assert torch.equal(fading[-1, :, 5:], torch.zeros_like(fading[-1, :, 5:]))  # true colours at the last
    assert fading[100:, :, 5:].abs().max() <= 0.05 + 1e-6 < fixed[100:, :, 5:].abs().max()


def test_noise_draws_after_everything_else_and_adds_a_window_of_the_field_scaled_by_sigma():
    shifted = replace(VIEWS, color_shift=0.1)
    recipe = replace(shifted, noise=0.2, noise_end=0.0)
    before, params = _draw(shifted), _draw(recipe)
    assert torch.equal(params[..., :11], before)  # the same crops and colours as without noise
    sigma, where = params[..., 11], params[..., 12:]
    assert torch.allclose(sigma[0], torch.full_like(sigma[0], 0.2)) and torch.equal(sigma[-1], torch.zeros_like(sigma[-1]))
    assert where.min() >= 0 and where.max() < 1

    generator = torch.Generator().manual_seed(3)
    field = transforms.noise_field(recipe, 32, generator)
    side = transforms.output_size(recipe, 32)
    assert field.shape == (3, 2 * side, 2 * side) and transforms.noise_field(shifted, 32, generator) is None
    image, step = torch.rand(1, 3, 32, 32), params[None, 0].clone()
    step[..., 11] = 0.0
    quiet = transforms.apply(recipe, image, step, field[None])
    assert torch.allclose(quiet, transforms.apply(shifted, image, step[..., :11]))  # sigma 0: no noise
    step[..., 11], step[..., 12:] = 0.5, 0.0  # the top-left window, at half strength
    noisy = transforms.apply(recipe, image, step, field[None])
    assert torch.allclose(noisy - quiet, 0.5 * field[:, :side, :side].expand_as(quiet), atol=1e-5)
    step[..., 12:] = 0.999  # the bottom-right window still lies inside the field
    assert transforms.apply(recipe, image, step, field[None]).shape == quiet.shape
    with pytest.raises(ValueError, match="noise_field"):
        transforms.apply(recipe, image, step)
    with pytest.raises(ValueError, match="needs the crops transforms"):
        replace(RECIPES["lucid"], noise=0.1)
    with pytest.raises(ValueError, match="must be >= 0"):
        replace(VIEWS, noise=-0.1)


def test_cosine_schedule_falls_from_lr_to_a_tenth(monkeypatch):
    settings, unit = Settings(size=32, steps=11, lr=0.05), Unit("features.5", 1)
    assert learning_rates(settings, unit) == [0.05] * 11
    monkeypatch.setitem(RECIPES, "test-cosine", replace(VIEWS, lr_schedule="cosine"))
    rates = learning_rates(settings.replace(recipe="test-cosine"), unit)
    assert rates[0] == pytest.approx(0.05) and rates[-1] == pytest.approx(0.005)
    assert all(a >= b for a, b in zip(rates, rates[1:]))


@pytest.mark.parametrize("knobs", [{"min_crop": 1.0, "min_crop_end": 0.3}, {"color_shift": 0.1},
                                   {"color_shift": 0.1, "color_shift_end": 0.0},
                                   {"lr_schedule": "cosine"}, {"smoothness": 5.0}, {"optimizer": "nadam"},
                                   {"noise": 0.1, "noise_end": 0.0}, {"color_shift": 0.1, "noise": 0.1}])
def test_every_knob_renders_reproducibly_alone_and_in_a_batch(tiny, cpu, knobs, monkeypatch):
    monkeypatch.setitem(RECIPES, "test-knob", replace(VIEWS, **knobs))
    settings = Settings(size=32, steps=8, precision="fp32", recipe="test-knob")
    units = [Unit("features.5", 1), Unit("features.5", 2)]
    alone = render_batch(tiny, units[:1], settings, cpu)[0]
    together = render_batch(tiny, units, settings, cpu)[0]
    plain = render_batch(tiny, units[:1], settings.replace(recipe="views"), cpu)[0]
    assert np.array_equal(alone.images[0], together.images[0])
    assert not np.array_equal(alone.images[0], plain.images[0])
    assert np.isfinite(alone.curve).all()


def test_smoothness_charges_for_pixel_to_pixel_variation(tiny, cpu, monkeypatch):
    from atlas.engine.objectives import total_variation

    flat, noisy = torch.full((1, 3, 16, 16), 0.5), torch.rand(1, 3, 16, 16)
    assert total_variation(flat).item() == 0 and total_variation(noisy).item() > 0.3
    monkeypatch.setitem(RECIPES, "test-smooth", replace(VIEWS, smoothness=50.0))
    settings = Settings(size=32, steps=24, precision="fp32", lr=0.2, recipe="test-smooth")
    (smooth,) = render_batch(tiny, [Unit("features.5", 1)], settings, cpu)
    (plain,) = render_batch(tiny, [Unit("features.5", 1)], settings.replace(recipe="views"), cpu)
    as_tensor = lambda r: torch.tensor(r.images[0] / 255.0).permute(2, 0, 1)[None]  # noqa: E731
    assert total_variation(as_tensor(smooth)) < 0.8 * total_variation(as_tensor(plain))


# Cache keys as the code computed them on 2026-11-27 (commit a56b8ad), pinned as literals:
# a key that moves makes every cached image of it render again, so any change to these
# must be deliberate (and come with a RECIPE_VERSION bump where images change).
PINNED_KEYS = {
    ("views", "channel"): "d5b8e66e98d832cadb809c607339853b",
    ("steady", "channel"): "14d74946eb0f192e44056ce073bde73c",
    ("steady", "logit"): "ba27202e7e30130a4a0225df6c6ecc13",
    ("zoom", "channel"): "02875512605b7b73b4bde01de32470fd",
    ("zoom", "logit"): "6fc93e46d3c1d9dfd312a7257897fa1b",
    ("settle", "channel"): "6405ac0728772e78e11047a07bfa56d8",
    ("settle", "logit"): "1d782ef7558be010f327f6efc5993af5",
    ("closeup", "channel"): "318a635147927e29459b0777afd22cde",  # added 2026-11-27 (issue 28)
    ("closeup", "logit"): "baebd96e093ab9109bd11906b6f2303d",
    ("lucid", "channel"): "821cca06bc122a0b9f6b4fa02b150dc6",
    ("lucid", "logit"): "1c167c264e77f95d2ecfabefafa23045",
}


@pytest.mark.parametrize("recipe,objective", sorted(PINNED_KEYS))
def test_cache_keys_of_every_recipe_stay_where_they_were(recipe, objective):
    from atlas.store.cache import entry_key

    settings = Settings(size=32, steps=4, precision="fp32", recipe=recipe)
    unit = Unit("features.5", 3) if objective == "channel" else Unit("classifier.6", 3, "logit")
    assert entry_key("m", "fp", unit, settings) == PINNED_KEYS[(recipe, objective)]


def test_a_recipe_knob_that_is_set_moves_the_key(monkeypatch):
    from atlas.store.cache import entry_key

    settings = Settings(size=32, steps=4, precision="fp32", recipe="views")
    unit = Unit("features.5", 3)
    monkeypatch.setitem(RECIPES, "test-shift", replace(VIEWS, color_shift=0.1))
    assert entry_key("m", "fp", unit, settings.replace(recipe="test-shift")) != PINNED_KEYS[("views", "channel")]


def test_a_recipe_brings_its_step_size_unless_one_is_named(monkeypatch):
    monkeypatch.setitem(RECIPES, "test-slow", replace(VIEWS, lr=0.02))
    assert Settings(recipe="test-slow").lr == 0.02
    assert Settings(recipe="test-slow", lr=0.1).lr == 0.1
    assert Settings(recipe="views").replace(recipe="test-slow").lr == 0.02
    assert Settings(recipe="test-slow").replace(recipe="views").lr == VIEWS.lr
    assert Settings(recipe="views", lr=0.2).replace(recipe="test-slow").lr == 0.2  # named, so kept
    assert Settings(recipe="test-slow").as_dict()["lr"] == 0.02  # the key holds the number
    assert learning_rates(Settings(recipe="test-slow", steps=3), Unit("features.5", 1)) == [0.02] * 3


def test_zoom_gives_its_crop_schedule_to_class_units_alone(tiny, cpu):
    zoom, steady = RECIPES["zoom"], RECIPES["steady"]
    channel, logit = Unit("features.5", 1), Unit(tiny.output_layer, 3, "logit")
    assert zoom.for_unit(channel) == steady and zoom.for_unit(logit) == zoom.classes != steady
    settings = Settings(size=32, steps=8, precision="fp32", recipe="zoom")
    as_steady = settings.replace(recipe="steady")
    for unit, same in ((channel, True), (logit, False)):
        (a,), (b,) = render_batch(tiny, [unit], settings, cpu), render_batch(tiny, [unit], as_steady, cpu)
        assert np.array_equal(a.images[0], b.images[0]) == same


def test_settle_is_zoom_with_class_units_at_a_smaller_step(tiny, cpu, monkeypatch):
    settle, zoom = RECIPES["settle"], RECIPES["zoom"]
    assert settle.classes == replace(zoom.classes, lr=0.02) and replace(settle, classes=None) == RECIPES["steady"]
    channel, logit = Unit("features.5", 1), Unit(tiny.output_layer, 3, "logit")
    monkeypatch.setitem(RECIPES, "test-flat", settle.classes)  # what bench/judges.py measured as zoom-lr0.02
    settings = Settings(size=32, steps=8, precision="fp32", recipe="settle")
    assert settings.lr == 0.03 and settings.lr_for(logit) == 0.02 and settings.lr_for(channel) == 0.03
    for unit, twin in ((logit, "test-flat"), (channel, "steady")):
        (a,), (b,) = render_batch(tiny, [unit], settings, cpu), render_batch(tiny, [unit], settings.replace(recipe=twin), cpu)
        assert np.array_equal(a.images[0], b.images[0])
    from atlas.store.cache import entry_key
    assert entry_key("m", "fp", logit, settings) != entry_key("m", "fp", logit, settings.replace(recipe="zoom"))


def test_closeup_is_settle_with_channels_in_smaller_crops(tiny, cpu):
    # The recipe version stays: closeup is a new name whose knobs its keys hold, so
    # no image of an older recipe can be served for it, and settle's cache stays valid.
    closeup, settle = RECIPES["closeup"], RECIPES["settle"]
    assert closeup.classes == settle.classes
    assert replace(closeup, classes=None) == replace(RECIPES["steady"], min_crop=0.25)
    channel, logit = Unit("features.5", 1), Unit(tiny.output_layer, 3, "logit")
    settings = Settings(size=32, steps=8, precision="fp32", recipe="closeup")
    # Class images are settle's, bit for bit (so the judges' class numbers cannot move);
    # channel images are not.
    for unit, same in ((logit, True), (channel, False)):
        (a,), (b,) = (render_batch(tiny, [unit], s, cpu) for s in (settings, settings.replace(recipe="settle")))
        assert np.array_equal(a.images[0], b.images[0]) == same


def test_class_views_share_the_number_of_views(monkeypatch):
    with pytest.raises(ValueError, match="class views"):
        replace(VIEWS, classes=replace(VIEWS, views=4))
    cosine = replace(VIEWS, classes=replace(VIEWS, lr_schedule="cosine"))  # a schedule of their own is fine
    monkeypatch.setitem(RECIPES, "test-cosine-classes", cosine)
    settings = Settings(size=32, steps=5, recipe="test-cosine-classes")
    assert learning_rates(settings, Unit("classifier.6", 3, "logit"))[-1] == pytest.approx(VIEWS.lr / 10)
    assert learning_rates(settings, Unit("features.5", 1)) == [VIEWS.lr] * 5


def test_optimizers_are_named_by_the_recipe():
    from atlas.core.settings import OPTIMIZERS

    assert all(issubclass(getattr(torch.optim, name), torch.optim.Optimizer) for name in OPTIMIZERS.values())
    with pytest.raises(ValueError, match="unknown optimizer"):
        replace(VIEWS, optimizer="sgd")


def test_class_units_may_take_their_own_step_size_in_the_recipes_ratio(monkeypatch):
    channel, logit = Unit("features.5", 1), Unit("classifier.6", 3, "logit")
    monkeypatch.setitem(RECIPES, "test-two-steps", replace(VIEWS, lr=0.03, classes=replace(VIEWS, lr=0.02)))
    settings = Settings(size=32, steps=3, recipe="test-two-steps")
    assert settings.lr == 0.03 and settings.lr_for(channel) == 0.03
    assert learning_rates(settings, logit) == [0.02] * 3
    named = settings.replace(lr=0.06)  # a named step size scales both kinds
    assert named.lr_for(channel) == 0.06 and named.lr_for(logit) == pytest.approx(0.04)
    # the class units' step size is in their key, so a new ratio never serves old images
    from atlas.store.cache import entry_key
    monkeypatch.setitem(RECIPES, "test-two-steps-b", replace(RECIPES["test-two-steps"], classes=replace(VIEWS, lr=0.025)))
    other = settings.replace(recipe="test-two-steps-b")
    assert entry_key("m", "fp", logit, settings) != entry_key("m", "fp", logit, other)
    assert settings.recipe_for(channel) == other.recipe_for(channel)


def test_a_class_unit_renders_at_its_own_step_size(tiny, cpu, monkeypatch):
    logit = Unit(tiny.output_layer, 3, "logit")
    monkeypatch.setitem(RECIPES, "test-slow-classes", replace(VIEWS, classes=replace(VIEWS, lr=0.02)))
    monkeypatch.setitem(RECIPES, "test-slow", replace(VIEWS, lr=0.02))
    settings = Settings(size=32, steps=6, precision="fp32")
    (a,), (b,), (c,) = (render_batch(tiny, [logit], settings.replace(recipe=r), cpu)
                        for r in ("test-slow-classes", "test-slow", "views"))
    assert np.array_equal(a.images[0], b.images[0]) and not np.array_equal(a.images[0], c.images[0])
    from atlas.pictures.render import entry_meta
    assert entry_meta(tiny, a, settings.replace(recipe="test-slow-classes"), "cpu")["settings"]["lr"] == 0.02
