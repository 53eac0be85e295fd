"""Real folders have broken files: every pass that reads a folder skips an unreadable image
with a warning, counts it, and goes on; errors name the option the user gave."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from atlas.cli import main

TINY = "tests.tinynet:tiny_vgg"


def broken_folder(folder):
    """Four good photos, a truncated JPEG, a text file named .jpg and a CMYK JPEG (which is fine)."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for n in range(4):
        Image.fromarray(rng.integers(0, 256, size=(40, 48, 3), dtype=np.uint8)).save(folder / f"good{n}.png")
    Image.fromarray(rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)).save(folder / "a-truncated.jpg")
    data = (folder / "a-truncated.jpg").read_bytes()
    (folder / "a-truncated.jpg").write_bytes(data[:len(data) // 3])
    (folder / "b-not-an-image.jpg").write_text("this is a note, not a photo")
    Image.new("CMYK", (50, 40), (0, 200, 200, 0)).save(folder / "c-cmyk.jpg")
    return folder


def test_every_pass_skips_unreadable_photos_counts_them_and_goes_on(tmp_path):
    photos = broken_folder(tmp_path / "photos")
    result = CliRunner().invoke(main, [
        "build", TINY, "--weights", "random", "--layers", "features.2", "--channels", "2", "--classes", "none",
        "--size", "32", "--steps", "3", "--precision", "fp32", "--examples", str(photos), "--dissect", str(photos),
        "--activation-atlas", str(photos), "--atlas-layout", "pca", "--atlas-positions", "8", "--atlas-icon-steps", "2",
        "--caricature-photos", "2", "--workers", "0", "--cache-dir", str(tmp_path / "cache"),
        "--out", str(tmp_path / "site"), "--no-connections"])
    assert result.exit_code == 0, result.output
    out = result.output
    # one pass reads the folder for examples, the dissection's quantiles and the atlas samples,
    # one for the dissection's IoU counts
    assert ("dataset examples and dissection quantiles and activation-atlas samples: "
            "skipped 2 unreadable images of 7") in out
    assert "activation atlas of features.2: 40 samples of 5 photos" in out
    assert "dissection IoU: skipped 2 unreadable images of 7" in out
    assert "a-truncated.jpg" in out and "b-not-an-image.jpg" in out and "c-cmyk.jpg" not in out.split("site:")[0]
    assert "caricatures at 1 layer: rendered 2" in out           # the first two readable photos
    import json
    stored = [json.loads(p.read_text()) for p in (tmp_path / "cache" / "examples").glob("*.json")]
    assert stored and stored[0]["images"] == 5                   # 4 good photos and the CMYK one


@pytest.mark.parametrize("option,message", [("--caricatures", "--caricatures"), ("--examples", "--examples"),
                                            ("--dissect", "--dissect"), ("--activation-atlas", "--activation-atlas")])
def test_a_missing_folder_is_named_by_the_option_the_user_gave(tmp_path, option, message):
    result = CliRunner().invoke(main, ["build", TINY, "--classes", "0", option, str(tmp_path / "nope"),
                                       "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "s")])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {message} {tmp_path / 'nope'} is not a folder")
    assert "Traceback" not in result.output
