"""The build as one library call: background storing, batch sizing, bf16 weights, OOM halving."""

import dataclasses

import threading
import time

import numpy as np
import pytest
import torch

from atlas.pictures import render as builds
from atlas.store import cache
from atlas.model import device as devices
from atlas.core.errors import AtlasError
from atlas.engine import batching
from atlas.engine.batching import render
from atlas.engine.render import render_batch
from atlas.model.runtime import Runtime, resolve_runtime
from atlas.pipeline import BuildRequest, run_build
from atlas.pipeline.request import selection_of, settings_of
from atlas.plan.work import make_plan
from atlas.core.settings import DEFAULT_RECIPE, Settings
from atlas.core.units import Unit
from atlas.core.background import BackgroundWriter

FAST = Settings(size=32, steps=4, precision="fp32")
TINY = "tests.tinynet:tiny_vgg"


# ----------------------------------------------------------------------------- the background writer

def test_writer_runs_jobs_in_order_and_close_waits_for_them():
    done = []
    with BackgroundWriter(depth=1) as writer:
        for i in range(5):
            writer.submit(lambda i=i: (time.sleep(0.01), done.append(i)))
    assert done == [0, 1, 2, 3, 4]


def test_writer_work_overlaps_the_callers():
    started = threading.Event()
    release = threading.Event()
    with BackgroundWriter() as writer:
        writer.submit(lambda: (started.set(), release.wait(5)))
        assert started.wait(5)  # the job runs while the caller goes on
        release.set()


def test_writer_error_reaches_the_caller_at_its_next_submit_or_close():
    def fail():
        raise AtlasError("disk full")

    writer = BackgroundWriter()
    writer.submit(fail)
    writer.wait()   # the failing job has run: no race with the next submit
    with pytest.raises(AtlasError, match="disk full"):
        writer.submit(lambda: None)
    writer.close()

    writer = BackgroundWriter()
    writer.submit(fail)
    with pytest.raises(AtlasError, match="disk full"):
        writer.close()


def test_writer_finishes_queued_work_when_the_caller_fails():
    done = []
    with pytest.raises(KeyError):
        with BackgroundWriter(depth=4) as writer:
            writer.submit(lambda: (time.sleep(0.05), done.append(1)))
            raise KeyError("render failed")
    assert done == [1]


def test_background_and_inline_storing_store_the_same_entries(tiny, cpu, tmp_path):
    units = [Unit("features.5", i) for i in range(4)] + [Unit("classifier.3", 1, "logit")]
    stored = {}
    for background in (True, False):
        root = tmp_path / str(background)
        plan = make_plan(tiny, units, FAST, root)
        summary = builds.render_plan(tiny, plan, FAST, dataclasses.replace(cpu, batch_size=2), root=root, background=background)
        assert summary.rendered == 5
        stored[background] = {e.key: [p.read_bytes() for p in e.image_paths] for e in cache.scan(root)}
    assert stored[True] == stored[False] and len(stored[True]) == 5


# ----------------------------------------------------------------------------- batch size from memory

def test_batch_size_from_memory_arithmetic():
    gb = 1e9
    # 80 GB free, 80 % usable = 64 GB, less 4 GB fixed = 60 GB; 100 MB a view, 2 views an image: 300 images -> 256
    assert batching.batch_size_from_memory(80 * gb, 0.1 * gb, 2, fixed_bytes=4 * gb) == 256
    assert batching.batch_size_from_memory(80 * gb, 0.1 * gb, 2, fixed_bytes=4 * gb, cap=1000) == 256  # a power of two
    assert batching.batch_size_from_memory(10 * gb, 0.1 * gb, 2) == 32  # 40 images fit -> 32
    assert batching.batch_size_from_memory(1 * gb, 10 * gb, 2) == 1  # never below one
    # a little more or less free memory cuts the same batches
    assert batching.batch_size_from_memory(10.5 * gb, 0.1 * gb, 2) == batching.batch_size_from_memory(9.8 * gb, 0.1 * gb, 2)


def test_batch_size_for_cuda_is_measured_from_two_probes(tiny, monkeypatch):
    """Fake CUDA memory: each view costs 50 MB, any batch 1 GB; 40 GB free."""
    mb = 1e6
    state = {"peak": 0}
    probed = []

    def fake_render_batch(model, units, settings, runtime):
        probed.append((units[0].layer, len(units), settings.steps))
        state["peak"] = 1000 * mb + 50 * mb * len(units) * units[0].diversity * settings.recipe_spec.views

    monkeypatch.setattr(batching, "render_batch", fake_render_batch)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: 0)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: state["peak"])
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (40e9, 80e9))
    monkeypatch.setattr(devices, "empty_cache", lambda device: None)

    units = [Unit("features.0", i) for i in range(8)] + [Unit("classifier.3", i, "logit") for i in range(10)]
    settings = Settings(size=32, steps=512, precision="fp32")  # views recipe: 2 views an image
    cuda = Runtime(torch.device("cuda"), "fp32", torch.float32, cuda_graphs=False)
    size = batching.batch_size_for(tiny, units, settings, cuda)
    # (40 GB * 0.8 - 1 GB) / (50 MB * 2 views) = 310 images -> capped at 256
    assert size == 256
    # probes run the deepest layer (the most activations kept), 2 steps, two batch sizes
    assert probed == [("classifier.3", 4, 2), ("classifier.3", 8, 2)]

    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8e9, 80e9))
    # (8 GB * 0.8 - 1 GB) / 100 MB = 54 images -> 32
    assert batching.batch_size_for(tiny, units, settings, cuda) == 32


# ----------------------------------------------------------------------------- out of memory

def test_out_of_memory_halves_the_batch_and_renders_every_unit(tiny, cpu, monkeypatch):
    real = batching.render_batch
    tried = []

    def small_memory(model, units, settings, runtime, **kwargs):
        tried.append(len(units))
        if len(units) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(model, units, settings, runtime, **kwargs)

    monkeypatch.setattr(batching, "render_batch", small_memory)
    units = [Unit("features.5", i) for i in range(7)]
    results = [r for batch in render(tiny, units, FAST, dataclasses.replace(cpu, batch_size=8)) for r in batch]
    assert [r.unit for r in results] == units
    # one failed try at 7, one at 4 (the halved cut), then batches of at most 2 with no more failures
    assert tried == [7, 4, 2, 2, 2, 1]


def test_an_error_that_is_not_out_of_memory_is_raised(tiny, cpu, monkeypatch):
    def broken(model, units, settings, runtime, **kwargs):
        raise RuntimeError("something else")

    monkeypatch.setattr(batching, "render_batch", broken)
    with pytest.raises(RuntimeError, match="something else"):
        list(render(tiny, [Unit("features.5", 0), Unit("features.5", 1)], FAST, dataclasses.replace(cpu, batch_size=2)))


# ----------------------------------------------------------------------------- bf16 weights

def test_bf16_weights_match_autocast_and_are_restored(tiny):
    settings = FAST.replace(precision="bf16", steps=8)
    units = [Unit("features.5", 2), Unit("classifier.3", 1, "logit")]
    before = {k: v.clone() for k, v in tiny.module.state_dict().items()}
    bf16 = resolve_runtime("cpu", "bf16")
    plain = [render_batch(tiny, [u], settings, bf16)[0] for u in units]
    with devices.weights_in_bf16(tiny.module, "bf16"):
        assert tiny.module.features[0].weight.dtype == torch.bfloat16
        held = [render_batch(tiny, [u], settings, bf16)[0] for u in units]
    for a, b in zip(plain, held):
        diff = np.abs(a.images[0].astype(int) - b.images[0].astype(int))
        assert diff.mean() <= 0.5 and diff.max() <= 8, (diff.mean(), diff.max())
    after = tiny.module.state_dict()
    assert all(after[k].dtype == v.dtype and torch.equal(after[k], v) for k, v in before.items())


def test_bf16_weights_leave_norms_attention_and_fp32_alone():
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                 torch.nn.MultiheadAttention(4, 2), torch.nn.Linear(4, 2)).requires_grad_(False)
    with devices.weights_in_bf16(module, "bf16"):
        assert module[0].weight.dtype == module[3].weight.dtype == torch.bfloat16
        assert module[1].weight.dtype == torch.float32
        assert module[2].in_proj_weight.dtype == module[2].out_proj.weight.dtype == torch.float32
    with devices.weights_in_bf16(module, "fp32"):
        assert module[0].weight.dtype == torch.float32


# ----------------------------------------------------------------------------- the request

def test_request_fills_the_preset_under_the_users_options(cpu):
    quick = BuildRequest(TINY, preset="quick", size=48)
    assert selection_of(quick).channels == 3 and selection_of(quick).classes == "reference"
    settings = settings_of(quick, cpu)
    assert settings.size == 48 and settings.steps == 128
    # each preset's recipe is the one measured best at its steps; a named one wins
    assert settings.recipe == "zoom" and settings_of(BuildRequest(TINY), cpu).recipe == DEFAULT_RECIPE == "closeup"
    assert settings_of(BuildRequest(TINY, preset="quick", recipe="views"), cpu).recipe == "views"
    assert selection_of(BuildRequest(TINY, preset="results")).units == ("reference",)
    assert selection_of(BuildRequest(TINY, preset="results", units=("features.5:1",))).units == ("features.5:1",)


def test_run_build_is_the_whole_build_without_the_cli(tmp_path):
    said = []

    class Recorder:
        def say(self, text, err=False):
            said.append(text)

        def progress(self, total, label):
            import contextlib
            return contextlib.nullcontext(lambda n: said.append(f"+{n}"))

    request = BuildRequest(TINY, weights="random", layers="features.5", channels=2, classes="0", size=32, steps=3,
                           precision="fp32", cache_dir=tmp_path / "cache", out=tmp_path / "site", device="cpu")
    result = run_build(request, Recorder())
    assert result.summary.rendered == 3 and not result.summary.failed
    assert result.site == tmp_path / "site" / "index.html" and result.site.is_file()
    assert any(line.startswith("+") for line in said) and any("rendered 3" in line for line in said)
    again = run_build(request, Recorder())
    assert again.summary.rendered == 0 and again.summary.cached == 3


def test_a_size_the_model_never_takes_is_one_line_naming_its_rule(tmp_path):
    from click.testing import CliRunner

    from atlas.cli import main

    result = CliRunner().invoke(main, ["build", "tests.tinytransformers:tiny_vit", "--weights", "random",
                                       "--size", "8", "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "s")])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code != 0 and len(lines) == 1
    assert "--size 8" in lines[0] and "exactly 32 px" in lines[0]


def test_steps_per_kind_and_picture_sets_through_a_build(tmp_path):
    """Channels render for --channel-steps, classes for --class-steps; --pictures 3 renders three
    seeds of each unit in one batch, each cached on its own, and the unit page shows the set."""
    request = BuildRequest(TINY, weights="random", layers="features.5", channels=2, classes="0", size=32,
                           channel_steps=3, class_steps=5, pictures=3, precision="fp32", device="cpu",
                           cache_dir=tmp_path / "cache", out=tmp_path / "site", connections=False)
    result = run_build(request, None)
    assert result.summary.rendered == 9 and not result.summary.failed
    entries = list(cache.scan(tmp_path / "cache"))
    steps = {(e.unit.layer, e.unit.index, e.unit.picture): len(e.meta["curve"]) for e in entries}
    assert steps[("features.5", 0, 2)] == 3 and steps[("classifier.3", 0, 1)] == 5
    shas = {e.unit.picture: e.meta["images"][0]["sha256"] for e in entries if (e.unit.layer, e.unit.index) == ("features.5", 1)}
    assert len(set(shas.values())) == 3                       # three seeds, three pictures
    page = next((tmp_path / "site" / "models").iterdir()) / "layers" / "features.5" / "1.html"
    html = page.read_text(encoding="utf-8")
    assert html.count('alt="features.5[1] picture') == 3 and "3 pictures, one per seed" in html
    again = run_build(request, None)
    assert again.summary.rendered == 0 and again.summary.cached == 9


def test_the_pictures_of_a_unit_render_in_its_batch_and_alone_alike(tiny, cpu):
    from atlas.plan.selection import Selection, select_units

    units = select_units(tiny, Selection(layers="features.5", channels=2, classes="none", pictures=2))
    assert [(u.index, u.picture) for u in units] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    together = render_batch(tiny, units, FAST, cpu)
    alone = render_batch(tiny, [units[1]], FAST, cpu)[0]
    assert np.array_equal(together[1].images[0], alone.images[0])
    assert not np.array_equal(together[0].images[0], together[1].images[0])
