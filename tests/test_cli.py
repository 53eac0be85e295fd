"""The `atlas` command: user errors, resuming after SIGKILL, sharding across processes."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from atlas.cli import main
from atlas.core.settings import Settings
from tests.tinynet import tiny_vgg

ROOT = Path(__file__).resolve().parents[1]
TINY = "tests.tinynet:tiny_vgg"
FAST = ["--size", "32", "--steps", "4", "--precision", "fp32"]


def run_cli(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    return result.exit_code, result.output


def atlas_process(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "atlas", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    torch.save(tiny_vgg().state_dict(), folder / "tiny.pth")
    torch.save(torch.nn.Linear(3, 4).state_dict(), folder / "linear.pth")
    (folder / "garbage.pth").write_bytes(b"not a checkpoint")
    (folder / "a_file").write_text("x")
    return folder


BAD_INPUTS = [
    (["build", "vgg17"], "unknown model 'vgg17'"),
    (["build", TINY, "--layers", "features.9"], "no layer 'features.9'; did you mean"),
    (["build", TINY, "--layers", "nothing*"], "no layer of"),
    (["build", TINY, "--classes", "10"], "class 10 is out of range 0-9"),
    (["build", TINY, "--classes", "3-x"], "malformed class"),
    (["build", TINY, "--units", "features.5:99"], "out of range: features.5 has 16 channels"),
    (["build", TINY, "--units", "features.5"], "malformed unit"),
    (["build", TINY, "--shard", "3/2"], "malformed --shard"),
    (["build", TINY, "--size", "0"], "image size must be between"),
    (["build", TINY, "--size", "100000"], "image size must be between"),
    (["build", TINY, "--steps", "0"], "steps must be between"),
    (["build", TINY, "--steps", "-5"], "steps must be between"),
    (["build", TINY, "--weights", "{w}/garbage.pth"], "cannot read weights file"),
    (["build", TINY, "--weights", "{w}/linear.pth"], "does not fit"),
    (["build", TINY, "--weights", "{w}/missing.pth"], "not found"),
    pytest.param(["build", TINY, "--device", "cuda:0"], "no CUDA GPU is available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
    (["build", TINY, "--device", "tpu"], "unknown device"),
    (["build", TINY, "--out", "{w}/a_file"], "is a file, not a folder"),
    (["build", TINY, "--cache-dir", "{w}/a_file"], "is a file, not a folder"),
    (["render", "--cache-dir", "{w}/nowhere"], "no atlas cache"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS)
def test_bad_input_gives_one_line_and_nonzero_exit(args, message, weight_files, tmp_path):
    args = [a.replace("{w}", str(weight_files)) for a in args]
    if args[0] == "build":  # small settings first, so the case's own options win
        args = args[:2] + FAST + ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "site")] + args[2:]
    code, output = run_cli(*args)
    assert code != 0
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines == [lines[-1]] and lines[-1].startswith("Error: ") and message in lines[-1], output
    assert "Traceback" not in output


def test_unknown_recipe_is_a_usage_error_naming_the_choices(tmp_path):
    code, output = run_cli("build", TINY, "--recipe", "magic", "--cache-dir", tmp_path)
    assert code == 2 and "Traceback" not in output
    assert output.strip().splitlines()[-1].startswith("Error: Invalid value for '--recipe'") and "views" in output


def test_local_weights_file_is_used_and_fingerprinted(weight_files, tmp_path):
    code, output = run_cli("layers", TINY, "--weights", weight_files / "tiny.pth")
    assert code == 0 and "features.5" in output and "Conv2d" in output and "16" in output


def build(cache, *extra):
    return run_cli("build", TINY, "--layers", "features.5", "--channels", "4", "--classes", "0-2",
                   "--cache-dir", cache, *FAST, *extra)


def test_second_build_renders_nothing_and_dry_run_estimates(tmp_path):
    code, output = build(tmp_path / "c", "--dry-run")
    assert code == 0 and "7 to render" in output and "estimated time" in output
    assert not (tmp_path / "c" / "entries").exists()
    code, output = build(tmp_path / "c", "--no-site")
    assert code == 0 and "rendered 7, from cache 0, failed 0" in output
    code, output = build(tmp_path / "c", "--no-site")
    assert code == 0 and "rendered 0, from cache 7, failed 0" in output
    code, output = build(tmp_path / "c", "--no-site", "--steps", "5")
    assert code == 0 and "rendered 7, from cache 0" in output
    other = "lucid" if Settings().recipe != "lucid" else "views"
    code, output = build(tmp_path / "c", "--no-site", "--recipe", other)
    assert code == 0 and "rendered 7, from cache 0" in output and f"recipe {other}" in output


def _entry_files(cache: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (cache / "entries").glob("*/*") if not p.name.startswith(".")}


@pytest.mark.slow
def test_build_killed_with_sigkill_resumes_and_keeps_finished_units(tmp_path):
    cache = tmp_path / "cache"
    args = ["build", TINY, "--classes", "all", "--cache-dir", cache, "--size", "32", "--steps", "40",
            "--precision", "fp32", "--batch-size", "2", "--no-site"]
    process = atlas_process(*args)
    # Kill once 4 of its 42 entries have landed: a point of progress, not of time. The
    # build renders 21 batches of 2, so it is still running then (and if it died, say why).
    while len(list(cache.glob("entries/*/*.json"))) < 4:
        assert process.poll() is None, f"the build ended before it was killed: {process.stderr.read()}"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _entry_files(cache)
    assert sum(name.endswith(".json") for name in before) >= 4

    finished = atlas_process(*args)
    out, err = finished.communicate(timeout=300)
    assert finished.returncode == 0, err
    after = _entry_files(cache)
    for name, data in before.items():
        assert after.get(name) == data, f"{name} changed or vanished"
    done = sum(name.endswith(".json") for name in before)
    assert f"from cache {done}" in out
    assert sum(name.endswith(".json") for name in after) == 8 + 8 + 16 + 10


def free_port() -> int:
    """A port nothing listens on now (the OS picks it), for torchrun's rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun ships with torch")
def test_torchrun_two_processes_make_the_same_cache_as_one(tmp_path):
    common = ["build", TINY, "--layers", "features.2", "--classes", "0-4", *FAST, "--no-site"]
    single = atlas_process(*common, "--cache-dir", tmp_path / "one")
    assert single.wait(timeout=300) == 0, single.stderr.read()
    torchrun = Path(sys.executable).parent / "torchrun"
    process = subprocess.run([torchrun, "--nproc-per-node=2", "--master-port", str(free_port()), "-m", "atlas",
                              *map(str, common), "--cache-dir", tmp_path / "two"],
                             cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr
    assert "[rank 0/2]" in process.stdout and "[rank 1/2]" in process.stdout
    one = {p.name: p for p in (tmp_path / "one").glob("entries/*/*.json")}
    two = {p.name: p for p in (tmp_path / "two").glob("entries/*/*.json")}
    assert len(one) == 13 and one.keys() == two.keys()
    for key in one:
        a = sorted((tmp_path / "one").glob(f"entries/*/{key[:-5]}.*.png"))
        b = sorted((tmp_path / "two").glob(f"entries/*/{key[:-5]}.*.png"))
        assert len(a) == len(b) == 1
        diff = np.abs(np.asarray(Image.open(a[0]), int) - np.asarray(Image.open(b[0]), int))
        assert diff.max() <= 2
