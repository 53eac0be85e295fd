"""The full-atlas projection of bench/throughput.py, from recorded rates (issue 34): a report
kept from an H200 run projects again under other step counts without a GPU."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
H200_TABLE = ROOT / "docs/gpu-check/2026-11-26-h200-throughput-cudnn-benchmark.txt"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "bench/throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_projection_weights_each_layer_by_its_units_and_its_kinds_steps(throughput):
    rows = [{"layer": "conv", "units": 10, "ms_per_image_step": 6.0, "floor_ms": 3.0, "one_by_one_ms": 60.0},
            {"layer": "logits", "units": 4, "ms_per_image_step": 3.0, "floor_ms": 1.0, "one_by_one_ms": None}]
    found = throughput.projected(rows, output_layer="logits", channel_steps=100, class_steps=200, size_ratio=4)
    # conv: 6 ms x 10 units x 100 steps x 4 = 24,000 ms; logits: 3 x 4 x 200 x 4 = 9,600 ms
    assert found["projected_minutes"] == pytest.approx(33.6 / 60)
    assert found["floor_minutes"] == pytest.approx((12.0 + 3.2) / 60)
    assert found["one_by_one_minutes"] == pytest.approx(240.0 / 60)   # a missing rate adds nothing
    assert found["projected_units"] == 14


def test_a_recorded_h200_table_projects_as_it_did_and_again_under_todays_steps(throughput, tmp_path):
    report, rows = throughput.recorded_rows(H200_TABLE)
    assert len(rows) == 14 and rows[-1]["layer"] == "classifier.6" and sum(r["units"] for r in rows) == 5224
    then = throughput.projected(rows, output_layer="classifier.6", channel_steps=512, class_steps=512)
    assert round(then["projected_minutes"], 1) == 15.2 and round(then["floor_minutes"], 1) == 10.1   # as printed
    now = throughput.projected(rows, output_layer="classifier.6", channel_steps=256, class_steps=512)
    assert now["projected_minutes"] < then["projected_minutes"] * 0.65
    saved = tmp_path / "report.json"
    saved.write_text(json.dumps({"device": "cuda:0", "size": 112, "rows": rows}))
    again, same = throughput.recorded_rows(saved)
    assert same == rows and again["size"] == 112
