"""Selection, planning, the cache, and a build end to end through the library."""

import dataclasses

import numpy as np
import pytest

import atlas.pictures.render as build_module
import atlas.engine.batching as batching
from atlas.store import cache
from atlas.pictures.render import render_plan
from atlas.engine.render import Rendered
from atlas.plan.selection import Selection, select_units
from atlas.core.errors import AtlasError
from atlas.core.batches import batches
from atlas.core.parse import parse_indices, parse_shard
from atlas.plan.selection import checked_unit
from atlas.plan.work import make_plan, shard
from atlas.core.settings import RECIPES, Settings
from atlas.core.units import Unit

FAST = Settings(size=32, steps=4, precision="fp32")


def test_parse_indices_ranges_and_errors():
    assert parse_indices("1,3, 10-12", 20, "class") == [1, 3, 10, 11, 12]
    for bad, message in [("5-2", "start is after end"), ("x", "malformed"), ("1,25", "out of range"), ("", "no class")]:
        with pytest.raises(AtlasError, match=message):
            parse_indices(bad, 20, "class")


def test_checked_unit(tiny):
    assert checked_unit(tiny, "features.5:7") == ("features.5", 7)
    assert checked_unit(tiny, "features.5[7]") == ("features.5", 7)
    with pytest.raises(AtlasError, match="out of range"):
        checked_unit(tiny, "features.5:16")
    with pytest.raises(AtlasError, match="malformed unit"):
        checked_unit(tiny, "features.5")
    with pytest.raises(AtlasError, match="no layer"):
        checked_unit(tiny, "features.9:1")


@pytest.mark.parametrize("bad", ["0/3", "4/3", "a/b", "1/0", "2"])
def test_parse_shard_rejects_malformed(bad):
    with pytest.raises(AtlasError, match="--shard"):
        parse_shard(bad)


def test_shards_partition_the_plan_exactly():
    units = [Unit("l", i) for i in range(23)]
    parts = [shard(units, k, 4) for k in range(1, 5)]
    assert sorted(u for part in parts for u in part) == sorted(units)
    assert sum(map(len, parts)) == len(units)
    assert parse_shard("2/4") == (2, 4) and parse_shard(None) == (1, 1)


def test_selection_defaults_globs_and_variants(tiny):
    units = select_units(tiny, Selection(classes="none"))
    assert {u.layer for u in units} == {"features.0", "features.2", "features.5"}
    assert len(units) == 8 + 8 + 16
    picked = select_units(tiny, Selection(layers="features.[02]", channels=2, classes="1-2",
                                          units=("features.5:9",), negative=True, diversity=3))
    base = [Unit("features.0", 0), Unit("features.0", 1), Unit("features.2", 0), Unit("features.2", 1),
            Unit("features.5", 9), Unit("classifier.3", 1, "logit"), Unit("classifier.3", 2, "logit")]
    assert picked[:7] == base
    assert picked[7:14] == [dataclasses.replace(u, negative=True) for u in base]
    assert picked[14:] == [dataclasses.replace(u, diversity=3) for u in base]
    with pytest.raises(AtlasError, match="matches"):
        select_units(tiny, Selection(layers="nothing.*"))
    with pytest.raises(AtlasError, match="out of range"):
        select_units(tiny, Selection(classes="10"))


def test_batches_group_by_layer_and_respect_size():
    units = [Unit("a", i) for i in range(5)] + [Unit("b", 0)] + [Unit("a", 9, diversity=2)] * 3
    result = batches(units, 2)
    assert [len(b) for b in result] == [2, 2, 1, 1, 1, 1, 1]
    assert all(len({(u.layer, u.diversity) for u in b}) == 1 for b in result)


def test_cache_key_changes_with_every_setting_and_nothing_else():
    unit = Unit("features.5", 3)
    base = cache.entry_key("m", "fp", unit, FAST)
    assert cache.entry_key("m", "fp", Unit("features.5", 3), Settings(size=32, steps=4, precision="fp32")) == base
    changed = {
        "model": cache.entry_key("other", "fp", unit, FAST),
        "weights": cache.entry_key("m", "fp2", unit, FAST),
        "layer": cache.entry_key("m", "fp", Unit("features.2", 3), FAST),
        "index": cache.entry_key("m", "fp", Unit("features.5", 4), FAST),
        "objective": cache.entry_key("m", "fp", Unit("features.5", 3, "neuron"), FAST),
        "negative": cache.entry_key("m", "fp", Unit("features.5", 3, negative=True), FAST),
        "diversity": cache.entry_key("m", "fp", Unit("features.5", 3, diversity=2), FAST),
        "picture": cache.entry_key("m", "fp", Unit("features.5", 3, picture=1), FAST),
    }
    other_values = {"size": 48, "steps": 5, "lr": 0.1, "param": "pixel", "decay_power": 1.5, "redirect_steps": 0,
                    "diversity_weight": 5.0, "precision": "bf16", "seed": 3, "recipe": "lucid"}
    # class_steps keys class units alone (test below)
    assert set(other_values) | {"class_steps"} == {f.name for f in dataclasses.fields(Settings)}
    for name, value in other_values.items():
        changed[name] = cache.entry_key("m", "fp", unit, FAST.replace(**{name: value}))
    assert base not in changed.values()
    assert len(set(changed.values())) == len(changed)


def test_steps_per_kind_key_each_unit_by_the_steps_it_renders_with():
    """A channel at 4 steps keys as any 4-step render did, whatever the classes take; a class
    unit at 9 steps keys as a build with --steps 9 did: no key moves for a setting that does
    not change the image."""
    channel, logit = Unit("features.5", 3), Unit("classifier.3", 1, "logit")
    split = FAST.replace(class_steps=9)
    assert cache.entry_key("m", "fp", channel, split) == cache.entry_key("m", "fp", channel, FAST)
    assert cache.entry_key("m", "fp", logit, split) == cache.entry_key("m", "fp", logit, FAST.replace(steps=9))
    assert cache.entry_key("m", "fp", logit, split) != cache.entry_key("m", "fp", logit, FAST)
    assert split.steps_for(channel) == 4 and split.steps_for(logit) == 9
    assert "class_steps" not in FAST.as_dict() and split.for_unit(logit).as_dict() == FAST.replace(steps=9).as_dict()


def test_a_units_first_picture_keys_as_before_and_the_others_each_on_their_own():
    unit = Unit("features.5", 3)
    assert unit.as_dict() == Unit("features.5", 3, picture=0).as_dict() and "picture" not in unit.as_dict()
    keys = {cache.entry_key("m", "fp", Unit("features.5", 3, picture=k), FAST) for k in range(4)}
    assert len(keys) == 4


def test_cache_key_follows_a_recipes_knobs_not_just_its_name(monkeypatch):
    unit = Unit("features.5", 3)
    before = cache.entry_key("m", "fp", unit, FAST.replace(recipe="views"))
    monkeypatch.setitem(RECIPES, "views", dataclasses.replace(RECIPES["views"], views=3))
    assert cache.entry_key("m", "fp", unit, FAST.replace(recipe="views")) != before


def test_build_stores_every_unit_and_a_second_build_renders_nothing(tiny, cpu, tmp_path):
    units = select_units(tiny, Selection(layers="features.5", channels=3, classes="0-1"))
    plan = make_plan(tiny, units, FAST, tmp_path)
    assert len(plan.todo) == 5 and not plan.cached
    summary = render_plan(tiny, plan, FAST, cpu, root=tmp_path)
    assert summary.rendered == 5 and not summary.failed
    entries = {e.key: e for e in cache.scan(tmp_path)}
    assert set(entries) == set(plan.keys.values())
    entry = entries[plan.keys[units[-1]]]
    assert entry.meta["status"] == "ok" and 0 <= entry.meta["class_probability"] <= 1
    assert len(entry.meta["curve"]) == 4 and entry.meta["settings"]["size"] == 32
    image = np.asarray(__import__("PIL.Image", fromlist=["Image"]).open(entry.image_paths[0]))
    assert image.shape == (32, 32, 3)

    again = make_plan(tiny, units, FAST, tmp_path)
    assert not again.todo and len(again.cached) == 5
    assert render_plan(tiny, again, FAST, cpu, root=tmp_path).rendered == 0
    changed = make_plan(tiny, units, FAST.replace(steps=5), tmp_path)
    assert len(changed.todo) == 5


def test_corrupt_entry_is_detected_and_rendered_again(tiny, cpu, tmp_path):
    units = [Unit("features.5", 0), Unit("features.5", 1)]
    plan = make_plan(tiny, units, FAST, tmp_path)
    render_plan(tiny, plan, FAST, cpu, root=tmp_path)
    broken = cache.load(tmp_path, plan.keys[units[0]]).image_paths[0]
    broken.write_bytes(broken.read_bytes()[:50])
    with pytest.warns(cache.CorruptEntryWarning):
        again = make_plan(tiny, units, FAST, tmp_path)
    assert again.todo == [units[0]]
    render_plan(tiny, again, FAST, cpu, root=tmp_path)
    assert cache.load(tmp_path, plan.keys[units[0]]) is not None


def _diverging(model, units, settings, runtime, **kwargs):
    """A render_batch stand-in whose every unit diverges."""
    return [Rendered(u, (np.zeros((32, 32, 3), np.uint8),), (float("nan"),), (float("nan"),), None, 0.0,
                     "the optimization diverged (NaN or Inf)") for u in units]


def test_diverged_units_are_retried_then_marked_failed(tiny, cpu, tmp_path, monkeypatch):
    monkeypatch.setattr(batching, "render_batch", _diverging)  # the first try
    monkeypatch.setattr(build_module, "render_batch", _diverging)  # the retry
    plan = make_plan(tiny, [Unit("features.5", 0)], FAST, tmp_path)
    summary = render_plan(tiny, plan, FAST, cpu, root=tmp_path)
    assert summary.failed == ["features.5[0]"] and summary.rendered == 0
    (entry,) = cache.scan(tmp_path)
    assert entry.meta["status"] == "failed" and not entry.image_paths
    assert make_plan(tiny, [Unit("features.5", 0)], FAST, tmp_path).todo  # failures are retried next build


def test_a_unit_that_renders_on_its_retry_records_the_smaller_step(tiny, cpu, tmp_path, monkeypatch):
    monkeypatch.setattr(batching, "render_batch", _diverging)  # only the first try diverges
    unit = Unit("features.5", 0)
    summary = render_plan(tiny, make_plan(tiny, [unit], FAST, tmp_path), FAST, cpu, root=tmp_path)
    assert summary.rendered == 1 and not summary.failed
    (entry,) = cache.scan(tmp_path)
    assert entry.meta["status"] == "ok" and entry.image_paths
    assert entry.meta["settings"]["lr"] == pytest.approx(FAST.lr_for(unit) * build_module.RETRY_LR_FACTOR)
