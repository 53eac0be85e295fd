"""Dead units without a dataset (issue 35): a unit whose objective never moves from the
random start through a whole render is marked dead on its page and in its layer's summary."""

import math
import re

from click.testing import CliRunner

from atlas.cli import main
from atlas.core.entry import FLAT_BAND, is_flat


def test_a_curve_is_flat_only_when_it_never_leaves_the_band():
    assert is_flat([0.0] * 8)
    assert is_flat([2.5, 2.5 + 1e-6, 2.5])            # constant output: a bias and no weights
    assert is_flat([1e-7, -2e-7, 2.4e-7])              # Lite0's _conv_stem unit 11
    assert not is_flat([0.0, 0.0, FLAT_BAND * 3])       # a move beyond the band
    assert not is_flat([0.01, 0.3, 1.7])               # a live unit
    assert is_flat([1000.0, 1000.0 + FLAT_BAND * 500])  # the band scales with the value
    assert not is_flat([1.0])                          # one point says nothing
    assert not is_flat([math.nan, 0.0])
    assert is_flat([math.nan, 0.0, 0.0])               # non-finite points are skipped


def test_a_dead_channel_is_marked_on_its_page_and_in_its_layer(tmp_path):
    site = tmp_path / "site"
    result = CliRunner().invoke(main, [
        "build", "tests.tinynet:tiny_vgg_dead", "--weights", "random", "--layers", "features.2", "--channels", "5",
        "--classes", "none", "--size", "32", "--steps", "8", "--precision", "fp32", "--no-connections",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(site)])
    assert result.exit_code == 0, result.output
    index = next(site.rglob("features.2/index.html"))
    layer = index.read_text()
    summary = re.search(r"<b>(\d+)</b> dead \(the objective never moved[^:]*: (.*?)</span>", layer)
    assert summary, layer
    assert summary.group(1) == "1" and re.findall(r">(\d+)</a>", summary.group(2)) == ["3"]
    assert layer.count('class="tile dead"') == 1
    assert "Dead unit" in (index.parent / "3.html").read_text()
    for live in (0, 1, 2, 4):
        assert "Dead unit" not in (index.parent / f"{live}.html").read_text()


def test_with_a_dissection_the_photos_decide_and_the_page_says_so(tmp_path):
    from test_activation_atlas import photo_folder

    photos = photo_folder(tmp_path / "photos", 12)
    site = tmp_path / "site"
    result = CliRunner().invoke(main, [
        "build", "tests.tinynet:tiny_vgg_dead", "--weights", "random", "--layers", "features.2", "--channels", "5",
        "--classes", "none", "--size", "32", "--steps", "8", "--precision", "fp32", "--no-connections",
        "--dissect", str(photos), "--workers", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(site)])
    assert result.exit_code == 0, result.output
    index = next(site.rglob("features.2/index.html"))
    layer = index.read_text()
    assert re.search(r"<b>1</b> dead: <a [^>]*>3</a>", layer) and "never moved from random noise" not in layer
    page = (index.parent / "3.html").read_text()
    assert "Dead unit</b>: every value it takes on the dissection's photos" in page
    assert "Dead unit" not in (index.parent / "2.html").read_text()
