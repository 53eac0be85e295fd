"""Dataset examples: top-k against brute force, caching, invalidation."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

import atlas.data.stream as dataset
import atlas.examples.top as examples
from atlas.examples.job import find_examples
from atlas.examples.top import preprocess
from atlas.model.forward import activations
from atlas.data.photos import list_images
from tinynet import shown_at


def _write_images(folder, count, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = rng.integers(40, 90, size=2)
        pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        pixels[: h // 2] = rng.integers(0, 256, size=3)  # a flat band, so images differ in structure
        sub = folder / f"class{i % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(sub / f"img{i}.{'png' if i % 3 else 'jpg'}")
    (folder / "notes.txt").write_text("not an image")


@pytest.fixture
def small(tiny):
    # Examples are judged at the model's input size: keep it small for the test.
    return shown_at(tiny, 32)


def test_top_k_matches_brute_force(small, cpu, tmp_path):
    data = tmp_path / "data"
    _write_images(data, 11)
    results, report = find_examples(small, ["features.5", "classifier.3"], data, root=tmp_path / "cache",
                                    runtime=dataclasses.replace(cpu, photos_per_batch=4), k=3)
    assert report.images == 11 and report.rate > 0
    paths = list_images(data)
    assert len(paths) == 11
    with torch.no_grad():
        x = torch.stack([preprocess(p, small) for p in paths])
        x = (x - torch.tensor(small.mean).view(1, 3, 1, 1)) / torch.tensor(small.std).view(1, 3, 1, 1)
        acts = activations(small, x, {"features.5", "classifier.3"})
    truth = {"features.5": acts["features.5"].flatten(2).mean(2), "classifier.3": acts["classifier.3"]}
    for layer, values in truth.items():
        stored = results[layer]["channels"]
        assert len(stored) == values.shape[1]
        for channel, found in enumerate(stored):
            top = values[:, channel].topk(3)
            assert [e["file"] for e in found] == [str(paths[i].relative_to(data)) for i in top.indices]
            assert np.allclose([e["value"] for e in found], top.values.numpy(), atol=1e-4)
    crop = tmp_path / "cache" / "examples" / results["features.5"]["channels"][0][0]["crop"]
    assert Image.open(crop).size == (examples.CROP_SIDE, examples.CROP_SIDE)
    box = results["features.5"]["channels"][0][0]["box"]
    assert 0 <= box[0] < box[2] <= 32 and 0 <= box[1] < box[3] <= 32
    assert results["classifier.3"]["channels"][0][0]["box"] == [0, 0, 32, 32]


def test_results_are_cached_and_invalidated_by_new_images(small, cpu, tmp_path, monkeypatch):
    data = tmp_path / "data"
    _write_images(data, 6)
    first, _ = find_examples(small, ["features.5"], data, root=tmp_path / "cache", runtime=cpu, k=2)

    def no_forward(*args, **kwargs):
        raise AssertionError("cached examples were computed again")

    with monkeypatch.context() as patch:
        patch.setattr(dataset, "activations", no_forward)
        again, report = find_examples(small, ["features.5"], data, root=tmp_path / "cache", runtime=cpu, k=2)
    assert report.images == 0 and again == first

    _write_images(data / "more", 3, seed=1)
    changed, report = find_examples(small, ["features.5"], data, root=tmp_path / "cache", runtime=cpu, k=2)
    assert report.images == 9 and changed["features.5"]["images"] == 9


def test_bad_examples_folder_is_a_clear_error(small, cpu, tmp_path):
    from atlas.core.errors import AtlasError

    with pytest.raises(AtlasError, match="not a folder"):
        find_examples(small, ["features.5"], tmp_path / "nope", root=tmp_path, runtime=cpu)
    (tmp_path / "empty").mkdir()
    with pytest.raises(AtlasError, match="no images"):
        find_examples(small, ["features.5"], tmp_path / "empty", root=tmp_path, runtime=cpu)
