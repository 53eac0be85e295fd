"""The dataset contract: every feature that reads photos runs on one model of each family.

The rendering contract (test_contract.py) renders every torchvision classifier; this one
runs the dataset side on one small model per family (VGG-like, ResNet, MobileNetV3,
DenseNet, ViT, Swin): dataset examples, a colour dissection, an activation atlas (its
attributions to every class pass each family's layers, attention included) and dictionary
features, each through the build's own jobs and runner (`atlas.data.passes`), on a few
generated photos shown at a small size. Each must store its result for the family's
default hidden layer.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from atlas.activation_atlas.job import ActivationAtlasRequest
from atlas.core.settings import Settings
from atlas.data import passes
from atlas.data.passes import DatasetContext
from atlas.dictionary.job import DictionaryRequest
from atlas.dissection.job import DissectionRequest
from atlas.examples.job import ExamplesRequest
from atlas.model.loading import load_model
from atlas.model.runtime import resolve_runtime
from atlas.pipeline.datasets import FEATURES
from atlas.store import activation_atlas as stored_atlas, dictionary as stored_dictionary
from atlas.store import dissection as stored_dissection, examples as stored_examples
from test_activation_atlas import photo_folder
from tinynet import shown_at

# (model, the side photos are shown at, the layer the features read)
FAMILIES = [
    ("tests.tinynet:tiny_vgg", 32, "features.5"),
    ("resnet18", 64, "layer3"),
    ("mobilenet_v3_small", 64, "features.4"),
    ("densenet121", 64, "features.denseblock3"),
    ("tests.tinytransformers:tiny_vit", 32, "encoder.layers.encoder_layer_1"),
    ("tests.tinytransformers:tiny_swin", 32, "features.1"),
]


@pytest.mark.slow
@pytest.mark.parametrize("name, side, layer", FAMILIES, ids=[f[0].split(":")[-1] for f in FAMILIES])
def test_every_dataset_feature_runs_on_every_family(name, side, layer, tmp_path):
    torch.manual_seed(0)
    model = load_model(name, "random")
    model = shown_at(model, side) if model.spec.rule.free else model
    photos = photo_folder(tmp_path / "photos", 24)
    runtime = resolve_runtime("cpu", "fp32", photos_per_batch=8, workers=0)
    context = DatasetContext(model, runtime, tmp_path / "cache", Settings(size=side, steps=2, precision="fp32"),
                             (layer,), say=lambda *a, **k: None,
                             progress=lambda count, label: contextlib.nullcontext(lambda n: None))
    requests = {
        "examples": ExamplesRequest(photos, k=3),
        "dissection": DissectionRequest(photos),
        "activation_atlas": ActivationAtlasRequest(photos, layers=layer, positions=4, layout="pca", icon_steps=2,
                                                   min_count=2),
        "dictionary": DictionaryRequest(photos, layers=layer, size=16, k=2, epochs=2, seeds=1, pictures=2),
    }
    assert {feature.field for feature in FEATURES} == set(requests)    # a new feature joins this test
    jobs = [feature.job(context, requests[feature.field]) for feature in FEATURES]
    passes.run(jobs, model, runtime, say=lambda text: None,
               progress=lambda count, label: contextlib.nullcontext(lambda n: None))

    root = tmp_path / "cache"
    examples = [r for (m, _, l), r in stored_examples.scan(root).items() if l == layer]
    assert examples and len(examples[0]["channels"]) == model.layer(layer).channels
    dissected = [r for (m, _, l), r in stored_dissection.scan(root).items() if l == layer]
    assert dissected and np.isfinite(dissected[0].iou).all() and dissected[0].halves is not None
    atlases = [r for (m, _, l, c), r in stored_atlas.scan(root).items() if l == layer]
    assert atlases and any(level["cells"] for level in atlases[0]["levels"])
    learned = [r for (m, _, l), r in stored_dictionary.scan(root).items() if l == layer]
    assert learned and len(learned[0].features) == 16 and np.isfinite(learned[0].quality["r2"])
    assert sum(f.picture is not None for f in learned[0].features) >= 1


def _cli(tmp_path, *more):
    from click.testing import CliRunner

    from atlas.cli import main
    from test_activation_atlas import NAMED

    return CliRunner().invoke(main, ["build", NAMED, "--weights", "random", "--layers", "features.5", "--channels", "1",
                                     "--classes", "none", "--size", "32", "--steps", "2", "--precision", "fp32",
                                     "--workers", "0", "--cache-dir", str(tmp_path / "cache"),
                                     "--out", str(tmp_path / "site"), "--no-connections", *more])


@pytest.mark.parametrize("option, extra, message", [
    ("--examples", (), "--examples"),
    ("--dissect", (), "--dissect"),
    ("--activation-atlas", (), "--activation-atlas"),
    ("--caricatures", (), "--caricatures"),
    ("--features", (), "--features"),
    ("--activation-atlas", ("--atlas-layers", "nope"), "nope"),
    ("--activation-atlas", ("--atlas-class", "5000"), "--atlas-class 5000"),
    ("--features", ("--feature-layers", "nope"), "nope"),
    ("--features", ("--dictionary-size", "lots"), "--dictionary-size"),
])
def test_bad_dataset_input_fails_in_one_line_before_any_unit_renders(option, extra, message, tmp_path):
    """A missing folder or a bad dataset option costs the user no render: one line naming it,
    a non-zero exit, nothing in the cache."""
    folder = tmp_path / "missing" if not extra else photo_folder(tmp_path / "photos", 3)
    result = _cli(tmp_path, option, str(folder), *extra)
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "rendered" not in result.output and not list((tmp_path / "cache").glob("entries/*/*"))
