"""Dictionary features: a planted dictionary recovered, the measures by hand, resumed training
equal to an unbroken one, seeded sampling and held-out split, and the build end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from atlas.dictionary import collect
from atlas.dictionary.metrics import matched_cosines, quality, stability
from atlas.dictionary.sae import DictionaryShape, SparseDictionary
from atlas.dictionary.train import Training, checkpoint_epoch, fit, new_dictionary
from atlas.store import dictionary as stored
from test_activation_atlas import NAMED, photo_folder

CPU = torch.device("cpu")


def planted(atoms: int = 32, channels: int = 16, count: int = 8000, active: int = 3, seed: int = 0):
    """Vectors that are sparse non-negative sums of `active` of `atoms` known unit atoms."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(atoms, channels))
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    codes = np.zeros((count, atoms))
    for row in codes:
        row[rng.choice(atoms, active, replace=False)] = rng.uniform(0.5, 2.0, active)
    return torch.tensor(codes @ truth, dtype=torch.float32), torch.tensor(truth, dtype=torch.float32)


@pytest.mark.parametrize("kind, lr", [("topk", 3e-3), ("batchtopk", 1e-2)])
def test_training_recovers_a_planted_dictionary(kind, lr):
    """32 known atoms in 16 channels, 3 active per vector: a dictionary of 64 finds each
    of them (matched cosine 0.94 topk, 0.95 batchtopk when written)."""
    vectors, truth = planted()
    shape = DictionaryShape(channels=16, size=64, k=3, kind=kind)
    model = fit(vectors, shape, Training(epochs=8, batch=128, lr=lr, seed=0), device=CPU)
    assert matched_cosines(model.directions(), truth).mean() >= 0.9
    measured, frequency = quality(model, vectors[:2000], CPU)
    assert measured.r2 > 0.8 and frequency.shape == (64,)
    assert measured.l0 == pytest.approx(3) if kind == "topk" else 2 < measured.l0 < 4


def test_an_archetypal_dictionary_trains_and_its_atoms_stay_near_the_data():
    vectors, truth = planted(count=3000)
    shape = DictionaryShape(channels=16, size=48, k=3, kind="archetypal", candidates=512, relax=0.1)
    model = fit(vectors, shape, Training(epochs=4, batch=128, lr=3e-3), device=CPU)
    measured, _ = quality(model, vectors[:1000], CPU)
    assert measured.r2 > 0.5
    # each atom is a convex mix of (normalized) data plus a nudge no longer than `relax`
    mixed = torch.softmax(model.mix, 1) @ model.candidates
    assert ((model.atoms - mixed).norm(dim=1) <= 0.1 + 1e-5).all()


def test_quality_by_hand_for_a_dictionary_that_copies_its_input():
    """Atoms = the channel axes with k = C: every vector decodes exactly (R² 1, L0 = its
    non-zero channels); a feature never active is dead."""
    vectors = torch.tensor([[1.0, 0.0, 2.0], [0.0, 3.0, 1.0], [2.0, 0.0, 0.0]])
    shape = DictionaryShape(channels=3, size=4, k=3)
    model = SparseDictionary(shape, torch.zeros(3), 1.0)
    with torch.no_grad():
        model.decoder_weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [-1.0, 0, 0]]))
        model.encoder.copy_(model.decoder_weight.T)
    measured, frequency = quality(model, vectors, CPU)
    assert measured.r2 == pytest.approx(1.0, abs=1e-6)
    assert measured.l0 == pytest.approx(5 / 3) and measured.dead == pytest.approx(1 / 4)
    np.testing.assert_allclose(frequency, [2 / 3, 1 / 3, 2 / 3, 0])


def test_stability_is_one_for_the_same_atoms_in_another_order_and_lower_for_others():
    atoms = torch.eye(4)
    assert stability(atoms, atoms[[2, 0, 3, 1]]) == pytest.approx(1.0)
    assert stability(atoms, torch.ones(4, 4)) == pytest.approx(0.5)


def test_a_training_killed_after_an_epoch_resumes_to_the_same_dictionary():
    vectors, _ = planted(count=1200)
    shape, training = DictionaryShape(16, 32, 3), Training(epochs=3, batch=100, lr=3e-3, seed=1)
    whole = fit(vectors, shape, training, device=CPU)
    saved = []

    class Killed(Exception):
        pass

    def checkpoint(data):
        saved.append(data)
        raise Killed

    with pytest.raises(Killed):
        fit(vectors, shape, training, device=CPU, checkpoint=checkpoint)
    assert checkpoint_epoch(saved[-1]) == 1
    resumed = fit(vectors, shape, training, device=CPU, resume=saved[-1])
    torch.testing.assert_close(resumed.atoms, whole.atoms)


def test_weights_round_trip_through_arrays():
    vectors, _ = planted(count=500)
    for shape in (DictionaryShape(16, 24, 3), DictionaryShape(16, 24, 3, "archetypal", candidates=64)):
        model = new_dictionary(vectors, shape, seed=0)
        again = SparseDictionary.from_weights(shape, model.weights())
        torch.testing.assert_close(again.encode(vectors[:20]), model.encode(vectors[:20]))


def test_sampling_is_seeded_per_photo_and_the_held_out_photos_are_a_share_of_them():
    a = collect.places(7, 5, 4, 4, seed=3)
    assert np.array_equal(a, collect.places(7, 5, 4, 4, seed=3)) and len(set(a)) == 5
    assert not np.array_equal(a, collect.places(8, 5, 4, 4, seed=3))
    assert np.array_equal(collect.places(7, None, 4, 4, seed=3), np.arange(16))
    images = np.repeat(np.arange(50), 4)
    held = collect.held_out(images, 0.1, seed=0)
    assert len(np.unique(images[held])) == 5 and not set(images[held]) & set(images[~held])
    assert np.array_equal(held, collect.held_out(images, 0.1, seed=0))
    assert collect.held_out(np.zeros(3, int), 0.1, 0).all()          # a lone photo: measured, never trained on
    assert collect.per_photo(10, 64, 1000) is None and collect.per_photo(100, 64, 1000) == 16


def test_a_features_photos_rank_by_its_mean_code_and_crop_where_it_is_strongest():
    """Photo 0 has one strong position, photo 1 a weaker code everywhere: photo 1 fires more
    over the whole map, as a picture fills the whole map, and ranks first."""
    from types import SimpleNamespace

    from atlas.dictionary.features import FeatureTop

    shape = DictionaryShape(channels=2, size=2, k=2)
    identity = SparseDictionary(shape, torch.zeros(2), 1.0)
    with torch.no_grad():
        identity.encoder.copy_(torch.eye(2))
    maps = torch.zeros(2, 2, 3, 3)
    maps[0, 0, 2, 1] = 5.0
    maps[1, 0] = 2.0
    top = FeatureTop({"L": identity}, k=2, device=CPU)
    top.update(SimpleNamespace(acts={"L": maps}, ids=torch.tensor([10, 11])))
    values, ids, positions, maps = top.best["L"]
    assert ids[0].tolist() == [11, 10]
    assert values[0].tolist() == pytest.approx([2.0, 5.0 / 9])
    assert positions[0, 1].tolist() == [2, 1]
    assert maps[0, 0].tolist() == [2.0] * 9                        # each photo's map comes with it
    assert maps[0, 1].reshape(3, 3).tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 5.0, 0.0]]


def test_a_heatmap_lies_where_the_feature_fires_in_its_crop_scaled_by_its_peak_over_its_photos():
    from atlas.dictionary.heat import HEAT_SIDE, coarse_maps, over_crops

    codes = torch.zeros(16, 2)                    # a 4 x 4 map of two features: one hot cell each
    codes[1 * 4 + 2, 0] = 3.0                     # feature 0 at row 1, column 2
    codes[3 * 4 + 0, 1] = 1.0                     # feature 1 at row 3, column 0
    maps = coarse_maps(codes, (4, 4))
    assert maps.shape == (2, 16)
    weaker = maps / 3                             # the same photo, a third as strong
    both = torch.stack([maps, weaker], 1)         # [D = 2, k = 2, cells]
    whole, right_half = [0, 0, 64, 64], [32, 0, 64, 32]
    heat = over_crops(both, np.array([[whole, right_half], [whole, whole]]), (4, 4), 64)
    assert heat.shape == (2, 2, HEAT_SIDE, HEAT_SIDE) and heat.dtype == np.uint8
    row, col = np.unravel_index(heat[0, 0].argmax(), heat[0, 0].shape)
    assert row * 4 // HEAT_SIDE == 1 and col * 4 // HEAT_SIDE == 2    # under the hot cell
    assert heat[0, 0].max() > 200                  # near the feature's peak over its photos
    # The top right quarter of the weaker photo holds the hot cell at its left edge, at a third of the peak.
    assert 0 < heat[0, 1].max() <= 255 // 3 + 1
    assert heat[0, 1][:, -1].max() < heat[0, 1][:, 0].max()            # fading to the right, away from it
    row, col = np.unravel_index(heat[1, 0].argmax(), heat[1, 0].shape)
    assert row * 4 // HEAT_SIDE == 3 and col * 4 // HEAT_SIDE == 0


def test_a_fine_map_is_max_pooled_so_its_peak_survives():
    from atlas.dictionary.heat import MAP_SIDE, coarse_grid, coarse_maps

    codes = torch.zeros(56 * 56, 1)
    codes[10 * 56 + 40, 0] = 7.0
    assert coarse_grid((56, 56)) == (MAP_SIDE, MAP_SIDE)
    pooled = coarse_maps(codes, (56, 56)).reshape(MAP_SIDE, MAP_SIDE)
    assert pooled.max() == 7.0 and pooled.argmax().item() == (10 * MAP_SIDE // 56) * MAP_SIDE + 40 * MAP_SIDE // 56


def test_a_features_coherence_is_how_alike_its_top_photos_look():
    from atlas.dictionary.features import coherences

    embedded = np.array([[1, 0, 0], [1, 0.1, 0], [0.9, 0, 0.1], [0, 1, 0], [0, 0, 1], [np.nan] * 3], np.float32)
    values = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [2.0, 0.0, 0.0], [2.0, 1.0, 1.0]])
    ids = torch.tensor([[0, 1, 2], [0, 3, 4], [0, 3, 4], [5, 3, 3]])
    found = coherences((values, ids, None), embedded)
    assert found[0] > 0.98                        # three photos of one look
    assert abs(found[1]) < 1e-6                   # three photos at right angles: nothing shared
    assert np.isnan(found[2])                     # fires on one photo only: no pair
    assert found[3] == pytest.approx(1.0)         # the unread photo (NaN) is left out


def test_a_photos_embedding_is_a_seeded_projection_of_its_output_centred_on_every_photos_mean():
    from atlas.dictionary.features import PhotoEmbedding
    from atlas.data.stream import Batch

    torch.manual_seed(0)
    logits = torch.randn(40, 1000)
    logits[1] = logits[0] * 2                     # the same look, twice as strong
    embedding = PhotoEmbedding("out", 1000, 41, torch.device("cpu"), seed=5)
    embedding.update(Batch(torch.arange(40), torch.zeros(40, 3, 2, 2), {"out": logits}, torch.zeros(1)))
    assert embedding.vectors.shape == (41, PhotoEmbedding.DIMS) and np.isnan(embedding.vectors[40]).all()
    a, b = embedding.vectors[0], embedding.vectors[1]
    assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) == pytest.approx(1.0, abs=1e-5)
    cos = lambda u, v: float(u @ v / np.linalg.norm(u) / np.linalg.norm(v))
    truth = [cos(logits[i].numpy(), logits[j].numpy()) for i, j in ((2, 3), (4, 5), (6, 7))]
    projected = [cos(embedding.vectors[i], embedding.vectors[j]) for i, j in ((2, 3), (4, 5), (6, 7))]
    assert np.allclose(truth, projected, atol=0.35)
    centred = embedding.centred()
    assert np.allclose(centred[:40].mean(0), 0, atol=1e-4) and np.isnan(centred[40]).all()
    small = PhotoEmbedding("out", 10, 2, torch.device("cpu"))
    small.update(Batch(torch.arange(2), torch.zeros(2, 3, 2, 2), {"out": logits[:2, :10]}, torch.zeros(1)))
    assert np.array_equal(small.vectors, logits[:2, :10].numpy())    # few classes: kept as they are


# ----------------------------------------------------------------------------- end to end

def build(tmp_path, photos, *more):
    from atlas.cli import main

    return CliRunner().invoke(main, [
        "build", NAMED, "--weights", "random", "--layers", "features.2,features.5", "--channels", "2",
        "--classes", "0-1", "--size", "32", "--steps", "3", "--precision", "fp32", "--features", str(photos),
        "--feature-layers", "features.5", "--dictionary-size", "32", "--dictionary-k", "4", "--feature-pictures", "3",
        "--workers", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "site"),
        "--no-connections", *more])


def test_build_learns_a_dictionary_shows_its_features_and_resumes_from_the_cache(tmp_path, monkeypatch):
    photos = photo_folder(tmp_path / "photos", 30)
    first = build(tmp_path, photos)
    assert first.exit_code == 0, first.output
    line = next(l for l in first.output.splitlines() if l.startswith("dictionary of features.5:"))
    assert "32 features (k=4, topk)" in line and "3 pictures (rendered 3" in line
    records = list(stored.scan(tmp_path / "cache").values())
    assert len(records) == 1
    record = records[0]
    assert record.layer == "features.5" and record.images == 30 and record.stability is not None
    assert 0 < record.quality["r2"] <= 1 and record.quality["l0"] <= 4
    assert record.train_vectors == 27 * 16 * 16              # 3 of 30 photos held out; 16 x 16 positions each
    assert len(record.features) == 32 and sum(f.picture is not None for f in record.features) == 3
    pictured = [f for f in record.features if f.picture]
    assert all(f.frequency > 0 and f.examples for f in pictured)
    assert all((tmp_path / "cache" / "dictionary" / e["crop"]).is_file() for f in pictured for e in f.examples)
    # Each crop's heatmap, full heat (255) where the feature fires most over its photos
    heats = {f.index: [stored.decode_heat(e["heat"]) for e in f.examples] for f in record.features if f.examples}
    assert heats and all(h is not None and h.shape == (12, 12) for found in heats.values() for h in found)
    assert all(max(int(h.max()) for h in found) == 255 for found in heats.values())
    assert all(len(f.channels) == 6 for f in record.features)
    assert all(-1 <= f.coherence <= 1 for f in pictured)          # 9 photos each: two or more pairs
    index = next((tmp_path / "site").rglob("features.5/features.html")).read_text()
    assert 'data-key="coherence"' in index and index.count("data-coherence=") == sum(f.frequency > 0 for f in record.features)
    again = build(tmp_path, photos)
    assert again.exit_code == 0 and "dictionary features of 1 layer: from cache" in again.output
    assert list(stored.scan(tmp_path / "cache").values()) == records
    # A new record version makes the record again (from the stored vectors and training)
    monkeypatch.setattr(stored, "RECORD_VERSION", stored.RECORD_VERSION + 1)
    newer = build(tmp_path, photos)
    assert newer.exit_code == 0 and "dictionary features of 1 layer: from cache" not in newer.output
    assert "dictionary of features.5: 32 features" in newer.output
    assert len(list((tmp_path / "cache" / "dictionary").glob("*.json"))) == 2      # the old record and the new
    with pytest.raises(ValueError, match="version"):
        stored.key(kind="record", version=3)


def test_too_few_photos_for_the_dictionary_stop_the_build_in_one_line_before_rendering(tmp_path):
    photos = photo_folder(tmp_path / "photos", 3)
    result = build(tmp_path, photos, "--dictionary-size", "128")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "too few for 128 features" in result.output and "--dictionary-size" in result.output
    assert not list((tmp_path / "cache").glob("entries/*/*.json"))


def test_a_features_objective_is_the_mean_over_positions_of_dot_times_cosine():
    from atlas.engine import objectives

    torch.manual_seed(0)
    acts = torch.rand(2, 5, 3, 3)
    vectors = torch.randn(2, 5)
    plain = objectives.spread_direction("x", vectors, torch.zeros(2)).score({"x": acts})
    assert torch.allclose(plain, objectives.direction("x", vectors).score({"x": acts}), atol=1e-6)
    rows = acts.flatten(2).transpose(1, 2)                                   # [2, 9, 5]
    dots = (rows * vectors[:, None]).sum(2)
    cosines = dots / (rows.norm(dim=2) * vectors.norm(dim=1)[:, None])
    expected = (dots * cosines.clamp(min=objectives.MIN_COSINE)).mean(1)
    assert torch.allclose(objectives.spread_direction("x", vectors, torch.ones(2)).score({"x": acts}), expected,
                          atol=1e-5)


def test_a_finished_seed_replaces_its_checkpoint(tmp_path):
    stored.store_checkpoint(tmp_path, "k", 0, b"epoch 3")
    assert stored.load_checkpoint(tmp_path, "k", 0) == b"epoch 3"
    stored.store_trained(tmp_path, "k", 0, {"mean": np.zeros(3)}, meta={"epochs": 4})
    assert stored.load_checkpoint(tmp_path, "k", 0) is None
    assert stored.load_trained(tmp_path, "k", 0)[0] == {"epochs": 4}


def test_the_dictionary_size_is_a_number_or_a_multiple_of_the_channels():
    from atlas.core.errors import AtlasError
    from atlas.dictionary.job import MULTIPLE, parse_size

    assert parse_size(None) == (None, MULTIPLE)
    assert parse_size("896") == (896, MULTIPLE) and parse_size("4x") == (None, 4) and parse_size(" 2X ") == (None, 2)
    for bad in ("0x", "1", "x", "lots", "-3"):
        with pytest.raises(AtlasError, match="--dictionary-size"):
            parse_size(bad)


def test_shards_collect_their_share_and_the_dictionary_waits_for_all_of_them(tmp_path):
    """--shard K/N: each shard stores the vectors of its photos; the one that finds another
    shard's part missing says so and trains nothing; once every part is in, the merged
    vectors are the whole folder's, and the dictionary is learned once."""
    import contextlib

    from atlas.core.settings import Settings
    from atlas.data import passes
    from atlas.data.passes import DatasetContext
    from atlas.dictionary.job import DictionaryRequest, job_for_build
    from atlas.model.loading import load_model
    from atlas.model.runtime import resolve_runtime
    from tinynet import shown_at

    model = shown_at(load_model(NAMED, "random"), 32)
    runtime = resolve_runtime("cpu", "fp32", photos_per_batch=8, workers=0)
    photos = photo_folder(tmp_path / "photos", 20)
    request = DictionaryRequest(photos, layers="features.5", size=16, k=2, epochs=2, seeds=1, pictures=1)
    quiet = dict(say=lambda text: None, progress=lambda count, label: contextlib.nullcontext(lambda n: None))

    def run(shard):
        context = DatasetContext(model, runtime, tmp_path / "cache", Settings(size=32, steps=2, precision="fp32"),
                                 ("features.5",), shard=shard, **quiet)
        job = job_for_build(context, request)
        passes.run([job], model, runtime, **quiet)
        return job

    first = run((1, 2))
    assert first.waiting == ["features.5"] and "wait for the other shards" in first.summary()
    assert not stored.scan(tmp_path / "cache")
    second = run((2, 2))
    record = next(iter(stored.scan(tmp_path / "cache").values()))
    key = second.work[0].vectors_key
    parts = [stored.load_part(tmp_path / "cache", key, (k, 2))[1]["images"] for k in (1, 2)]
    assert set(parts[0]) == set(range(0, 20, 2)) and set(parts[1]) == set(range(1, 20, 2))
    assert record.images == 20 and record.train_vectors == 18 * 16 * 16   # 2 of 20 photos held out


def test_a_set_of_vectors_is_named_by_the_features_it_uses_most():
    from atlas.dictionary.label import sparse_codes, strongest

    vectors = torch.randn(300, 16)
    dictionary = new_dictionary(vectors, DictionaryShape(16, 24, 3), seed=0)
    codes = sparse_codes(dictionary, vectors.numpy())
    dense = dictionary.encode(vectors).clamp(min=0).detach().numpy()
    assert codes[0].shape == (300, 3) and (np.count_nonzero(dense, 1) <= 3).all()
    members = np.array([3, 17, 40, 41, 299])
    means = dense[members].mean(0)
    expected = [int(f) for f in np.argsort(-means, kind="stable")[:3] if means[f] > 0]
    found = strongest(codes, members, 24)
    assert [f for f, _ in found] == expected
    assert [v for _, v in found] == pytest.approx([round(float(means[f]), 4) for f in expected], abs=1e-4)
    assert strongest(codes, np.array([], int), 24) == []


def test_an_activation_atlas_of_a_layer_with_a_dictionary_names_its_cells_features(tmp_path):
    photos = photo_folder(tmp_path / "photos", 30)
    result = build(tmp_path, photos, "--activation-atlas", str(photos), "--atlas-layers", "features.5",
                   "--atlas-layout", "pca", "--atlas-icon-steps", "2")
    assert result.exit_code == 0, result.output
    record = next(iter(stored.scan(tmp_path / "cache").values()))
    atlas = json.loads(next((tmp_path / "cache" / "atlas").glob("*.json")).read_text())
    assert record.trained and atlas["dictionary"] == record.trained
    cells = [cell for level in atlas["levels"] for cell in level["cells"]]
    assert cells and all(cell["features"] for cell in cells)
    assert all(0 <= f < 32 and value > 0 for cell in cells for f, value in cell["features"])
    assert all([v for _, v in cell["features"]] == sorted((v for _, v in cell["features"]), reverse=True)
               for cell in cells)
    page = next((tmp_path / "site").rglob("features.5/atlas.html")).read_text(encoding="utf-8")
    data = json.loads(page.split('id="atlas-data">')[1].split("</script>")[0])
    assert data["features"] and 'id="atlas-label-by"' in page
    shown = {f.index for f in record.features if f.frequency > 0}
    for level in data["levels"]:
        for cell in level["cells"]:
            assert [f for f, _, _ in cell[7]] == [f for f, _ in next(
                c["features"] for lv in atlas["levels"] if lv["size"] == level["size"] for c in lv["cells"]
                if (c["row"], c["column"]) == (cell[0], cell[1]))]
            assert all((page_url is not None) == (f in shown) for f, _, page_url in cell[7])


def test_the_dissection_sees_a_dictionarys_codes_at_every_position_as_a_layers_maps():
    from atlas.data.stream import Batch
    from atlas.dictionary.label import StoredDictionary
    from atlas.dissection.features import EncodedMaps
    from atlas.store.dictionary import feature_layer

    torch.manual_seed(0)
    maps = torch.randn(2, 16, 3, 5)
    dictionary = new_dictionary(maps.permute(0, 2, 3, 1).reshape(-1, 16), DictionaryShape(16, 24, 3), seed=0)
    seen = []

    class Inner:
        def update(self, batch):
            seen.append(batch)

    adaptor = EncodedMaps(Inner(), {"conv": StoredDictionary("k", dictionary)}, torch.device("cpu"))
    assert adaptor.layers == {"conv"}
    adaptor.update(Batch(torch.arange(2), torch.zeros(2, 3, 4, 4), {"conv": maps}, torch.zeros(1)))
    codes = seen[0].acts[feature_layer("conv")]
    assert codes.shape == (2, 24, 3, 5) and set(seen[0].acts) == {feature_layer("conv")}
    for b, y, x in ((0, 0, 0), (1, 2, 4), (1, 1, 3)):
        torch.testing.assert_close(codes[b, :, y, x], dictionary.encode(maps[b, :, y, x][None])[0])


def test_a_build_with_a_dissection_and_features_dissects_the_features_too(tmp_path):
    from atlas.store import dissection as dissected

    photos = photo_folder(tmp_path / "photos", 30)
    result = build(tmp_path, photos, "--dissect", str(photos))
    assert result.exit_code == 0, result.output
    line = next(l for l in result.output.splitlines() if l.startswith("dissection of the dictionary features of 1 layer"))
    assert "of 32 units detect a concept" in line
    record = next(iter(stored.scan(tmp_path / "cache").values()))
    found = dissected.scan(tmp_path / "cache")
    features = found[(record.model, record.fingerprint, "features.5#features")]
    channels = found[(record.model, record.fingerprint, "features.5")]
    assert features.units == 32 and channels.units == 16 and features.images == channels.images == 30
    assert features.names == channels.names                               # the same concepts, the same photos
    layer = next((tmp_path / "site").rglob("features.5/features.html")).parent
    index = (layer / "features.html").read_text(encoding="utf-8")
    assert "features detect a colour concept" in index and "of the layer's 16 channels" in index
    live = next(f.index for f in record.features if f.frequency > 0)
    page = (layer / f"feature-{live}.html").read_text(encoding="utf-8")
    concept = features.names[features.finding(live).concept]
    assert 'id="concept"' in page and f"<b>{concept}</b>" in page
