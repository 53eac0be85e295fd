"""`make gpu-check` runs here on the CPU at tiny sizes, so it is ready when a GPU is lent."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402

from atlas.model.device import supports_bf16  # noqa: E402


@pytest.mark.slow
@pytest.mark.timeout(900)   # every step of the check, tiny, on two cores
@pytest.mark.skipif(shutil.which("make") is None, reason="needs make, as `make test` does")
def test_gpu_check_runs_every_step_on_the_cpu_and_writes_one_report(tmp_path):
    out = tmp_path / "check"
    # The check's own synthetic photos, named, so a developer's .gpu-data/photos is not read.
    photos = gpu_check.synthetic_photos(tmp_path / "photos")
    done = subprocess.run(["make", "-s", "gpu-check", f"GPU_CHECK_PYTHON={sys.executable}",
                           f"GPU_CHECK_OUT={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_PHOTOS": str(photos)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "gpu-check: all steps passed" in done.stdout

    report = json.loads((out / "gpu-check.json").read_text())
    assert report["failed"] == []
    steps = report["steps"]
    tests = steps["tests"]
    # Every accelerator test ran but the CUDA-graph one, which skips where no graph runs (a
    # CPU) rather than pass by comparing eager steps with eager steps, and the two bf16 ones
    # where the CPU has no native bf16; a skip is listed with its reason, never counted.
    bf16 = supports_bf16(torch.device("cpu"))
    assert ("6 passed, 1 skipped" if bf16 else "4 passed, 3 skipped") in tests["summary"], tests["summary"]
    assert len(tests["skipped"]) == (1 if bf16 else 3)
    assert any("no CUDA graph runs on cpu" in line for line in tests["skipped"])
    assert set(tests["measured"]) >= {"alone_vs_batch", "same_seed", "out_of_memory", "kill_resume"} | (
        {"bf16_image_side"} if bf16 else set())
    assert "cuda_graphs_vs_eager" not in tests["measured"]
    build = steps["build"]
    assert build["entries"]["ok"] == build["entries"]["units"] == 12
    assert build["inline"]["entries"]["ok"] == 12 and build["render_site"]["returncode"] == 0
    # one picture of 8 channels per layer, and sets of 4 of 2: the same 16 images, each stored on its own
    assert [run["entries"]["ok"] for run in build["pictures"].values()] == [16, 16]
    rows = steps["throughput"]["measured"]["rows"]
    assert [r["layer"] for r in rows] == ["features.0", "features.2", "features.5", "classifier.3"]
    assert all(r["ms_per_image_step"] > 0 and r["gflop_per_image_step"] > 0 for r in rows)
    assert steps["throughput"]["measured"]["projected_units"] == 8 + 8 + 16 + 10
    assert steps["throughput-before"]["measured"]["projected_units"] == 8 + 8 + 16 + 10
    assert steps["dissection"]["measured"]["rows"][0]["images"] == 24
    atlas = steps["atlas"]["measured"]
    assert atlas["sampling"]["samples_per_layer"] == 64 * 8 and atlas["atlases"][0]["icons"] > 0
    assert atlas["site"]["pages"], "no atlas page was written"
    dictionary = steps["dictionary"]["measured"]
    assert dictionary["vectors"] == 20000 and dictionary["features"] == 8 * 16 and dictionary["seconds_per_epoch"] > 0

    text = (out / "gpu-check.md").read_text()
    assert "- skipped: tests/test_accelerator.py" in text
    assert "| features.5 |" in text and "Projected full atlas" in text and "Failed steps: none" in text
    assert "- sets of 4: 16 images" in text
    assert "## 4. Network dissection" in text and "## 5. Activation atlas" in text
    assert (out / "work" / "site" / "index.html").is_file()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_check_without_cuda_stops_with_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "GPU_CHECK_DEVICE"}
    done = subprocess.run([sys.executable, "bench/gpu_check.py", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**env, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "no CUDA GPU" in lines[0] and "GPU_CHECK_DEVICE=cpu" in lines[0]
