"""The objective registry (atlas.kinds), parameterized units, directions and top-5 labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from atlas.store import cache
from atlas.core import kinds
from atlas.core.errors import AtlasError
from atlas.model.forward import activations
from atlas.engine.render import render_batch
from atlas.core.entry import EntryMeta
from atlas.plan.selection import Selection, select_units
from atlas.core.settings import Settings
from atlas.core.units import Unit

FAST = Settings(size=32, steps=12, precision="fp32")


def test_registry_rejects_an_unknown_objective_with_a_clear_error():
    with pytest.raises(AtlasError, match=r"unknown objective 'sparkle'; choose from channel, neuron, .*direction"):
        Unit("features.0", 1, "sparkle")
    with pytest.raises(AtlasError, match="unknown objective"):
        kinds.kind("sparkle")
    with pytest.raises(AtlasError, match="needs parameters seed, weights"):
        Unit("features.0", 1, "direction")


def test_every_kind_is_one_entry_with_its_facts():
    assert set(kinds.KINDS) >= {"channel", "neuron", "logit", "prob", "logsoftmax", "logodds", "deepdream", "direction",
                                "caricature"}
    assert kinds.names(is_class=True) == ("logit", "prob", "logsoftmax", "logodds")
    assert kinds.kind("deepdream").whole_layer and kinds.kind("deepdream").page == "layer"
    with pytest.raises(AtlasError, match="does not apply to classifier.3"):
        kinds.check_layout("neuron", "classifier.3", "flat")


def test_plain_units_keep_their_cache_keys():
    """Parameters are absent from a plain unit's dict, so caches made before them stay valid:
    the keys below are literals computed on 2026-11-27 (commit a56b8ad)."""
    old = {"layer": "features.28", "index": 54, "objective": "channel", "negative": False, "diversity": 1}
    assert Unit("features.28", 54).as_dict() == old
    assert cache.entry_key("vgg16", "f", Unit("features.28", 54), Settings(recipe="settle")) == "993d2ed0ce1be129e1c62b2b6cf4508b"
    direction = Unit("features.5", 0, "direction", params={"seed": 1, "weights": [0.6, -0.8]})
    settings = Settings(size=32, steps=4, precision="fp32", recipe="views")
    assert cache.entry_key("m", "f", direction, settings) == "4c973a1548483697fdd4b66674a8703b"


def test_parameters_are_frozen_hashable_and_part_of_the_key():
    a = Unit("features.5", 0, "direction", params={"seed": 1, "weights": [0.6, -0.8]})
    b = Unit("features.5", 0, "direction", params={"seed": 1, "weights": [0.8, -0.6]})
    assert a.params == (("seed", 1), ("weights", (0.6, -0.8)))
    assert hash(a) != hash(b) and a != b
    assert Unit.from_dict(a.as_dict()) == a
    assert cache.entry_key("m", "f", a, FAST) != cache.entry_key("m", "f", b, FAST)
    with pytest.raises(AttributeError):
        a.params = ()
    assert a.label == "features.5 direction 0"


def test_direction_objective_rises_and_a_one_hot_direction_is_the_channel(tiny, cpu):
    channels = tiny.layer("features.5").channels
    onehot = [0.0] * channels
    onehot[3] = 1.0
    direction = Unit("features.5", 0, "direction", params={"seed": 0, "weights": onehot})
    (result,) = render_batch(tiny, [direction], FAST.replace(steps=30), cpu)
    assert np.mean(result.curve[-5:]) > np.mean(result.curve[:5])
    image = torch.from_numpy(result.images[0]).permute(2, 0, 1)[None].float() / 255
    from atlas.model.classifier import normalize
    acts = activations(tiny, normalize(tiny, image), {"features.5"})["features.5"]
    assert acts[0, 3].mean().item() == pytest.approx(result.final_objective, rel=0.05, abs=0.05)


def test_directions_are_seeded_random_mixes_with_negative_weights(tiny):
    units = select_units(tiny, Selection(layers="features.5", channels=0, classes="none", directions=3))
    assert [u.index for u in units] == [0, 1, 2] and {u.objective for u in units} == {"direction"}
    weights = np.array([u.param("weights") for u in units])
    assert weights.shape == (3, tiny.layer("features.5").channels)
    assert (weights < 0).any() and (weights > 0).any()
    np.testing.assert_allclose(np.linalg.norm(weights, axis=1), 1.0, atol=1e-4)
    again = select_units(tiny, Selection(layers="features.5", channels=0, classes="none", directions=3))
    assert again == units
    other = select_units(tiny, Selection(layers="features.5", channels=0, classes="none", directions=3,
                                         directions_seed=1))
    assert other[0].param("weights") != units[0].param("weights")


def test_top5_labels_are_computed_stored_and_read_back(tiny, cpu, tmp_path):
    (result,) = render_batch(tiny, [Unit("features.5", 3)], FAST, cpu)
    assert len(result.labels) == 5
    probabilities = [p for _, p in result.labels]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    # The labels are the model's own softmax on the final image.
    image = torch.from_numpy(result.images[0]).permute(2, 0, 1)[None].float() / 255
    from atlas.model.classifier import normalize
    logits = activations(tiny, normalize(tiny, image), {tiny.output_layer})[tiny.output_layer]
    assert result.labels[0][0] == int(logits.argmax())
    from atlas.pictures.render import entry_meta
    meta = entry_meta(tiny, result, FAST, "cpu")
    assert EntryMeta.from_dict(meta).labels == result.labels
    assert EntryMeta.from_dict({**meta, "labels": [[1, "x"], "junk", [2, 0.5]]}).labels == ((2, 0.5),)


def test_cli_lists_objectives_from_the_registry_and_renders_directions(tmp_path):
    from atlas.cli import main

    runner = CliRunner()
    result = runner.invoke(main, ["build", "tests.tinynet:tiny_vgg", "--layers", "features.5", "--channels", "0",
                                  "--classes", "none", "--directions", "2", "--size", "32", "--steps", "3",
                                  "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "s"),
                                  "--no-connections"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "s" / "models").is_dir()
    pages = sorted(p.name for p in (tmp_path / "s").rglob("direction-*.html"))
    assert pages == ["direction-0.html", "direction-1.html"]
    bad = runner.invoke(main, ["build", "tests.tinynet:tiny_vgg", "--objective", "sparkle"])
    assert bad.exit_code != 0 and "sparkle" in bad.output


def test_cached_entries_without_labels_get_them_from_their_stored_images(tmp_path):
    import json

    from atlas.pipeline import BuildRequest, run_build

    request = BuildRequest("tests.tinynet:tiny_vgg", weights="random", layers="features.5", channels=2,
                           classes="none", size=32, steps=3, cache_dir=tmp_path / "c", write_site=False,
                           connections=False, precision="fp32")
    run_build(request)
    metas = sorted((tmp_path / "c" / "entries").glob("*/*.json"))
    fresh = [json.loads(p.read_text())["labels"] for p in metas]
    for path in metas:   # as an older version wrote them
        meta = json.loads(path.read_text())
        del meta["labels"]
        path.write_text(json.dumps(meta))
    result = run_build(request)
    assert result.summary.rendered == 0
    back = [json.loads(p.read_text())["labels"] for p in metas]
    # From the 8-bit image rather than the float one: the same top class, five of them.
    assert [labels[0][0] for labels in back] == [labels[0][0] for labels in fresh]
    assert all(len(labels) == 5 for labels in back)


def test_the_registry_refuses_a_second_entry_of_one_name():
    """torchvision's register_model raises on a duplicate name; so do ours, rather than
    letting a later entry silently replace an earlier one."""
    with pytest.raises(ValueError, match="registered already"):
        kinds.register(kinds.Kind("channel", "channel again"))
    with pytest.raises(ValueError, match="has a builder already"):
        kinds.builds("channel")(lambda rows, context: None)
    assert kinds.kind("channel").label == "channel"
