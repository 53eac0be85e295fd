"""The activation atlas: sampling and attribution against brute force, binning by hand, the icon
objective's value and gradient, reproducibility, bounded memory, and the build end to end."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from atlas.activation_atlas import grid, sampling
from atlas.activation_atlas.assemble import class_samples
from atlas.data.sources import chosen_photos
from atlas.model.loading import load_model
from atlas.model.classifier import normalize
from atlas.engine import objectives
from atlas.model.forward import activations
from tinynet import shown_at

NAMED = "tests.tinynet:tiny_vgg_named"


def photo_folder(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for n in range(count):
        pixels = np.zeros((40, 48, 3), np.uint8)
        pixels[:] = rng.integers(0, 256, 3)
        y, x = rng.integers(0, 24, 2)
        pixels[y:y + 16, x:x + 16] = rng.integers(0, 256, 3)
        Image.fromarray(pixels).save(folder / f"{n:03d}.png")
    return folder


# ----------------------------------------------------------------------------- attribution

def brute_force_attribution(model, x, layer, cells):
    """h . dlogit_c/dh at each cell, by reverse mode, one class at a time."""
    captured = {}
    module = dict(model.module.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: (o.retain_grad(), captured.__setitem__("h", o), None)[-1])
    out = model.module(x.clone().requires_grad_())
    handle.remove()
    h = captured["h"]
    result = torch.zeros(x.shape[0], cells.shape[1], out.shape[1], dtype=torch.float64)
    for c in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, c].sum(), h, retain_graph=True)
        for b in range(x.shape[0]):
            for j, (y, xq) in enumerate(cells[b].tolist()):
                result[b, j, c] = (g[b, :, y, xq] * h[b, :, y, xq]).sum().item()
    return result.detach()


@pytest.mark.parametrize("layer", ["features.2", "features.5"])
def test_attributions_to_every_class_match_reverse_mode_one_class_at_a_time(tiny, layer, monkeypatch):
    monkeypatch.setattr(sampling, "relaxed_max_pooling", lambda module: contextlib.nullcontext())
    torch.manual_seed(0)
    x = normalize(tiny, torch.rand(3, 3, 32, 32))
    side = activations(tiny, x, {layer})[layer].shape[-1]
    cells = torch.tensor([[[1, 2], [side - 1, 0]], [[0, 0], [2, 1]], [[side - 1, side - 1], [1, 1]]])
    vectors, attributed = sampling.attributions(tiny, x, layer, cells)
    expected = brute_force_attribution(tiny, x, layer, cells)
    np.testing.assert_allclose(attributed.double().numpy(), expected.numpy(), rtol=1e-4, atol=1e-8)
    maps = activations(tiny, x, {layer})[layer]
    assert torch.equal(vectors[1, 0], maps[1, :, 0, 0]) and torch.equal(vectors[2, 0], maps[2, :, side - 1, side - 1])


def test_max_pooling_passes_attributions_as_average_pooling():
    import torch.autograd.forward_ad as fwAD

    pool = nn.MaxPool2d(2)
    x = torch.tensor([[[[1.0, 9.0], [3.0, 4.0]]]])
    tangent = torch.tensor([[[[1.0, 2.0], [3.0, 6.0]]]])
    with fwAD.dual_level(), sampling.relaxed_max_pooling(pool):
        out = pool(fwAD.make_dual(x, tangent))
        primal, relaxed = fwAD.unpack_dual(out)
    assert primal.item() == 9.0 and relaxed.item() == pytest.approx(3.0)    # the mean, not the winner's 2.0


def test_a_model_that_reshapes_by_batch_size_is_attributed_from_the_input(tiny):
    class Reshaping(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.head = nn.Linear(4 * 8 * 8, 5)

        def forward(self, x):
            batch = x.shape[0]                       # as EfficientNet-Lite's head does
            return self.head(torch.relu(self.conv(x)).reshape(batch, -1))

    from atlas.model.loading import from_module
    from atlas.model.spec import ModelSpec
    model = from_module(Reshaping(), "reshaping", spec=ModelSpec(crop_size=8, resize_size=8))
    x = torch.rand(2, 3, 8, 8)
    cells = torch.tensor([[[1, 1], [5, 6]], [[0, 7], [3, 3]]])
    _, attributed = sampling.attributions(model, x, "conv", cells)
    np.testing.assert_allclose(attributed.double().numpy(), brute_force_attribution(model, x, "conv", cells).numpy(),
                               rtol=1e-4, atol=1e-8)


def test_positions_are_a_function_of_the_photo_and_seed_alone():
    assert np.array_equal(sampling.positions(7, 4, 0), sampling.positions(7, 4, 0))
    assert not np.array_equal(sampling.positions(7, 4, 0), sampling.positions(8, 4, 0))
    assert not np.array_equal(sampling.positions(7, 4, 0), sampling.positions(7, 4, 1))
    where = sampling.positions(3, 50, 0)
    assert where.min() >= 0 and where.max() < 1
    assert sampling.grid_cells(np.array([[0.0, 0.999], [0.5, 0.26]]), 4, 8).tolist() == [[0, 7], [2, 2]]


# ----------------------------------------------------------------------------- grids, by hand

def test_binning_and_averaging_against_a_hand_computation():
    coords = np.array([[0.05, 0.05], [0.10, 0.15], [0.95, 0.05], [0.55, 0.55], [0.60, 0.40], [0.51, 0.52]])
    vectors = np.array([[1, 0], [3, 2], [9, 9], [0, 4], [2, 0], [4, 8]], dtype=np.float32)
    attributions = np.array([[1, 0, 0], [3, 0, 0], [0, 0, 5], [0, 2, 0], [0, 4, 0], [0, 6, 1]], dtype=np.float32)
    cells = grid.bin_samples(coords, vectors, attributions, size=2, min_count=2)
    # (x, y) -> (row, column) in a 2 x 2 grid: rows are y, columns x
    assert [(c.row, c.column, c.count) for c in cells] == [(0, 0, 2), (0, 1, 2), (1, 1, 2)]
    top_left, top_right, bottom_right = cells
    np.testing.assert_allclose(top_left.mean, [2, 1])              # samples 0 and 1
    np.testing.assert_allclose(top_left.attribution, [2, 0, 0])
    np.testing.assert_allclose(top_right.mean, [5.5, 4.5])         # samples 2 and 4
    np.testing.assert_allclose(top_right.attribution, [0, 2, 2.5])
    np.testing.assert_allclose(bottom_right.mean, [2, 6])          # samples 3 and 5
    np.testing.assert_allclose(bottom_right.attribution, [0, 4, 0.5])
    assert [c.members.tolist() for c in cells] == [[0, 1], [2, 4], [3, 5]]
    assert grid.bin_samples(coords, vectors, attributions, size=2, min_count=3) == []


def test_layout_is_clipped_at_its_percentiles_with_a_margin():
    raw = np.array([[0.0, 0.0]] + [[x, x] for x in np.linspace(1, 2, 98)] + [[100.0, -100.0]])
    scaled = grid.normalize(raw)
    assert scaled.min() >= 0 and scaled.max() <= 1
    low, high = np.percentile(raw[:, 0], 1), np.percentile(raw[:, 0], 99)
    expected = (1.5 - (low - 0.1 * (high - low))) / (1.2 * (high - low))
    assert scaled[49, 0] == pytest.approx(expected, rel=1e-6) or scaled[50, 0] == pytest.approx(expected, rel=0.05)
    assert scaled[-1, 0] == 1.0 and scaled[-1, 1] == 0.0        # the outlier sits on the edge


def test_levels_and_directions():
    assert grid.default_levels(4000, 5) == (10, 20, 40)
    assert grid.default_levels(100_000, 5) == (40, 80, 160)
    assert grid.default_levels(30, 5) == (10,)
    mean = np.array([3.0, 4.0])
    assert grid.direction(mean) == (0.6, 0.8)
    whiten = grid.whitening(np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 0.0], [0.0, 2.0]]))
    v = np.array(grid.direction(mean, whiten))
    assert v[0] > 0.6 and abs(np.linalg.norm(v) - 1) < 1e-5        # the rare (low-variance) axis weighs more
    assert grid.top(np.array([0.1, 0.7, -1.0, 0.7]), 3) == [(1, 0.7), (3, 0.7), (0, 0.1)]


def test_a_class_atlas_keeps_the_samples_that_push_most_toward_its_class():
    scores = np.zeros((2000, 3), np.float32)
    scores[:, 1] = np.arange(2000)
    kept = class_samples(scores, 1)
    assert len(kept) == 200 and kept.min() == 1800


def test_the_sample_budget_bounds_the_photos_whatever_the_folder():
    for photos in (50, 1000, 100_000):
        chosen = chosen_photos(photos, 4, 400, seed=0)
        assert (photos * 4 if chosen is None else len(chosen) * 4) <= 400
    assert chosen_photos(1000, 4, 400, seed=0) == chosen_photos(1000, 4, 400, seed=0)


# ----------------------------------------------------------------------------- the icon objective

def test_icon_objective_value_and_gradient_against_brute_force():
    torch.manual_seed(1)
    acts = torch.randn(3, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    vectors = torch.randn(3, 5, dtype=torch.float64)
    power = torch.tensor([0.0, 2.0, 3.0], dtype=torch.float64)
    score = objectives.centre_direction("l", vectors, power)({"l": acts})
    for b in range(3):
        h, v = acts[b, :, 1, 1].detach().numpy(), vectors[b].numpy()
        dot = float(h @ v)
        cosine = max(dot / (np.linalg.norm(h) * np.linalg.norm(v) + 1e-6), 0.1)
        assert score[b].item() == pytest.approx(dot * cosine ** power[b].item(), rel=1e-9)
    assert torch.autograd.gradcheck(lambda a: objectives.centre_direction("l", vectors, power)({"l": a}), (acts,))
    (grad,) = torch.autograd.grad(score.sum(), acts)
    assert grad[:, :, 0, 0].abs().max() == 0 and grad[:, :, 1, 1].abs().max() > 0   # the centre alone


# ----------------------------------------------------------------------------- end to end

def build(tmp_path, photos, *more):
    from atlas.cli import main

    return CliRunner().invoke(main, [
        "build", NAMED, "--weights", "random", "--layers", "features.2,features.5", "--channels", "2",
        "--classes", "0-3", "--size", "32", "--steps", "3", "--precision", "fp32", "--activation-atlas", str(photos),
        "--atlas-icon-steps", "4", "--workers", "0", "--cache-dir", str(tmp_path / "cache"),
        "--out", str(tmp_path / "site"), "--no-connections", *more])


def test_the_same_folder_and_seed_give_the_same_atlas_and_icons_render_once(tmp_path):
    photos = photo_folder(tmp_path / "photos", 30)
    first = build(tmp_path, photos, "--atlas-layout", "pca", "--atlas-class", "2")
    assert first.exit_code == 0, first.output
    assert "activation atlas of features.5: 120 samples of 30 photos, layout pca" in first.output
    assert "class 2 atlas of features.5: 100 samples" in first.output
    records = {p.name: json.loads(p.read_text()) for p in (tmp_path / "cache" / "atlas").glob("*.json")}
    assert len(records) == 3
    icons = [cell["icon"] for r in records.values() for level in r["levels"] for cell in level["cells"]]
    rendered = sum(int(line.split("rendered ")[1].split(",")[0]) for line in first.output.splitlines()
                   if "atlas of" in line)
    assert rendered == len(set(icons))                    # a direction two cells share renders once
    again = build(tmp_path, photos, "--atlas-layout", "pca", "--atlas-class", "2")
    assert again.exit_code == 0 and "rendered 0" in again.output.split("activation atlas of")[1]
    assert {p.name: json.loads(p.read_text()) for p in (tmp_path / "cache" / "atlas").glob("*.json")} == records
    site = next((tmp_path / "site" / "models").iterdir())
    page = (site / "layers" / "features.5" / "atlas.html").read_text(encoding="utf-8")
    assert 'id="atlas-data"' in page and "average of" in page
    assert (site / "layers" / "features.5" / "atlas-class-2.html").is_file()
    assert "Activation atlas" in (site / "layers" / "features.5" / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_umap_with_a_fixed_seed_lays_out_the_same_twice():
    rng = np.random.default_rng(0)
    vectors = np.concatenate([rng.normal(0, 1, (60, 8)), rng.normal(5, 1, (60, 8))]).astype(np.float32)
    a, b = grid.layout(vectors, "umap"), grid.layout(vectors, "umap")
    assert a.method == "umap" and np.array_equal(a.coords, b.coords)
    # the two clusters land apart
    assert np.linalg.norm(a.coords[:60].mean(0) - a.coords[60:].mean(0)) > 0.3


def test_too_few_samples_for_umap_fall_back_to_pca_and_say_so():
    made = grid.layout(np.random.default_rng(0).normal(size=(10, 4)), "umap")
    assert made.method.startswith("pca (UMAP needs at least 16 samples")


def test_sampling_under_bf16_autocast_attributes_in_fp32(tiny, tmp_path):
    """Forward-mode tangents and autocast's casts disagree on dtypes, so the attributions run
    in fp32 whatever the pass's precision: the same numbers either way."""
    from atlas.data import sources, stream as dataset
    from atlas.activation_atlas.sampling import AtlasSampler
    from atlas.model.runtime import resolve_runtime

    small = shown_at(tiny, 32)
    source = sources.image_folder(photo_folder(tmp_path / "photos", 6), small)
    found = {}
    for precision in ("fp32", "bf16"):
        sampler = AtlasSampler(small, ["features.5"], 3, 0, None)
        dataset.stream(small, source, [sampler], resolve_runtime("cpu", precision, photos_per_batch=4, workers=0))
        found[precision] = sampler.arrays("features.5")
    assert found["bf16"]["attributions"].shape == (18, 10)
    np.testing.assert_allclose(found["bf16"]["attributions"].astype(np.float32),
                               found["fp32"]["attributions"].astype(np.float32), rtol=1e-2, atol=1e-3)
    assert np.array_equal(found["bf16"]["where"], found["fp32"]["where"])


def test_a_vits_attributions_pass_its_attention_and_match_reverse_mode():
    """torchvision's fused attention has no forward-mode derivative: the attributions take the
    plain path, and agree with reverse mode token by token."""
    vit = load_model("tests.tinytransformers:tiny_vit", "random")
    layer = "encoder.layers.encoder_layer_0"
    torch.manual_seed(0)
    x = normalize(vit, torch.rand(2, 3, 32, 32))
    cells = torch.tensor([[[0, 1], [3, 3]], [[2, 0], [1, 2]]])
    vectors, attributed = sampling.attributions(vit, x, layer, cells)
    captured = {}
    module = dict(vit.module.named_modules())[layer]
    handle = module.register_forward_hook(lambda m, i, o: (o.retain_grad(), captured.__setitem__("h", o), None)[-1])
    out = vit.module(x.clone().requires_grad_())
    handle.remove()
    h = captured["h"]                                                 # [B, 1 + 16 tokens, C]
    for c in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[:, c].sum(), h, retain_graph=True)
        for b in range(2):
            for j, (y, xq) in enumerate(cells[b].tolist()):
                token = 1 + y * 4 + xq
                expected = float((g[b, token] * h[b, token]).sum().detach())
                assert abs(float(attributed[b, j, c]) - expected) <= 1e-4 + 1e-4 * abs(expected)
    assert torch.allclose(vectors[1, 0], h[1, 1 + 2 * 4 + 0].detach())
    assert torch.backends.mha.get_fastpath_enabled()                  # the switch is put back


def test_an_atlas_key_changes_with_its_store_version_and_refuses_a_part_named_version(monkeypatch):
    from atlas.store import activation_atlas as stored
    before = stored.key(kind="samples", layer="features.5")
    monkeypatch.setattr(stored, "ATLAS_VERSION", stored.ATLAS_VERSION + 1)
    assert stored.key(kind="samples", layer="features.5") != before
    with pytest.raises(ValueError, match="version"):
        stored.key(kind="samples", version=2)     # would be overwritten by ATLAS_VERSION, silently
