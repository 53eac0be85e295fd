"""Dictionary features on the site: the layer's feature index, feature pages, the links
between features and channels, and every image and link resolving inside the site.

One tiny build with a dictionary (as tests/test_dictionary.py makes it) serves every
test; a test that changes the cache or the site works on its own copy.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote

import pytest

from atlas.site import write_site
from atlas.site.size import measure
from atlas.site.templates import format_number
from atlas.store import dictionary as stored
from test_activation_atlas import photo_folder
from test_browser import browser  # noqa: F401  (the fixture: a headless Chromium, or a skip)
from test_dictionary import build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("features-site")
    # Channels 0-15 of features.5 rendered: a feature's strongest channels have pages to link to.
    result = build(tmp_path, photo_folder(tmp_path / "photos", 30), "--channels", "16")
    assert result.exit_code == 0, result.output
    record = next(iter(stored.scan(tmp_path / "cache").values()))
    layer = next((tmp_path / "site" / "models").iterdir()) / "layers" / "features.5"
    return tmp_path, layer, record


def targets(page: Path) -> list[str]:
    html = page.read_text(encoding="utf-8")
    return [unquote(t) for t in re.findall(r'(?:href|src)="([^"#]+)', html) if not t.startswith(("http", "data:"))]


def feature_links(html: str) -> list[int]:
    return [int(n) for n in re.findall(r'href="feature-(\d+)\.html"', html)]


def live(record) -> list:
    return [f for f in record.features if f.frequency > 0]


def test_every_link_and_image_of_the_feature_pages_resolves(built):
    _, layer, record = built
    pages = [layer / "features.html", *layer.glob("feature-*.html"), layer / "index.html", layer / "0.html"]
    assert len(pages) == len(live(record)) + 3
    for page in pages:
        found = targets(page)
        assert found
        for target in found:
            assert (page.parent / target).resolve().is_file(), f"{page.name} -> {target}"


def test_the_index_shows_the_measures_of_the_stored_record(built):
    _, layer, record = built
    html = (layer / "features.html").read_text(encoding="utf-8")
    q, shape = record.quality, record.shape
    assert f"R² <b>{q['r2']:.3f}</b>" in html and f"L0 <b>{q['l0']:.1f}</b>" in html
    assert f"dead <b>{q['dead'] * 100:.1f} %</b>" in html and f"({q['vectors']:,} vectors)" in html
    assert f"stability <b>{record.stability:.2f}</b>" in html
    assert f"<b>{record.train_vectors:,}</b> training vectors from <b>{record.images}</b> photos" in html
    assert f"<b>{len(live(record))}</b> live features of {shape['size']} ({shape['kind']}, k = {shape['k']})" in html


def test_the_index_lists_every_live_feature_most_frequent_first_with_what_sorts_it(built):
    _, layer, record = built
    html = (layer / "features.html").read_text(encoding="utf-8")
    by_frequency = sorted(live(record), key=lambda f: (-f.frequency, f.index))
    assert feature_links(html) == [f.index for f in by_frequency]
    # The script sorts the tiles by these; each tile shows how often its feature fires.
    tiles = re.findall(r'data-index="(\d+)" data-frequency="([^"]+)"', html)
    assert [(int(i), float(v)) for i, v in tiles] == [(f.index, f.frequency) for f in by_frequency]
    assert f"{by_frequency[0].frequency * 100:.2f} %" in html
    dead = len(record.features) - len(live(record))
    assert (f"{dead} of 32 features never fired" in html) == (dead > 0)


def test_a_pictured_feature_page_shows_its_picture_photos_and_channels(built):
    _, layer, record = built
    feature = next(f for f in record.features if f.picture)
    html = (layer / f"feature-{feature.index}.html").read_text(encoding="utf-8")
    assert re.search(r'<img src="[./]*images/full/[^"]+" alt="[^"]*its picture"', html)
    assert html.count('class="example"') == len(feature.examples) > 0
    assert html.count("images/dictionary/") == len(feature.examples)
    # each crop under the heatmap of where it fires, as a small inline image (no file to publish)
    assert html.count('style="--heat: url(data:image/png;base64,') == 1          # one image for them all
    assert html.count('<span class="heat" style="background-position: 0 ') == len(feature.examples)
    assert "each crop is lit where the feature fires" in html
    assert all(f'<span class="rank">{n}</span> {format_number(e["value"])}</span>' in html
               for n, e in enumerate(feature.examples, 1))
    for channel, weight in feature.channels:
        linked = f'<a href="{channel}.html">channel {channel}</a>' if channel < 16 else f"channel {channel}"
        assert f"{linked} <span" in html and f"{weight:+.3f}" in html
    assert f"{feature.frequency * 100:.2f} % of held-out positions" in html
    assert 'href="features.html"' in html
    # the model's top classes on the picture, named, as on a channel's page
    from tinynet import NAMED_CLASSES
    assert "What the model calls its picture" in html
    labels = html[html.index('class="top-labels"'):html.index("</ol>", html.index('class="top-labels"'))]
    assert labels.count("<li>") >= 1 and any(name in labels for name in NAMED_CLASSES)


def test_feature_pages_link_their_neighbours_by_index(built):
    _, layer, record = built
    indices = sorted(f.index for f in live(record))
    middle = indices[1]
    html = (layer / f"feature-{middle}.html").read_text(encoding="utf-8")
    assert f'rel="prev" href="feature-{indices[0]}.html"' in html
    assert f'rel="next" href="feature-{indices[2]}.html"' in html
    assert "← first" in (layer / f"feature-{indices[0]}.html").read_text(encoding="utf-8")


def test_a_channel_page_lists_the_features_it_takes_part_in(built):
    _, layer, record = built
    channel = record.features[0].channels[0][0]
    naming = {f.index: w for f in live(record) for c, w in f.channels if c == channel}
    html = (layer / f"{channel}.html").read_text(encoding="utf-8")
    section = html.split('id="features"')[1].split("</section>")[0]
    listed = feature_links(section)
    assert listed and set(listed) <= set(naming) and len(listed) == min(len(naming), 12)
    assert f"{naming[listed[0]]:+.3f}" in section
    assert [abs(naming[i]) for i in listed] == sorted((abs(naming[i]) for i in listed), reverse=True)


def test_the_layer_page_links_its_features_with_their_summary(built):
    _, layer, record = built
    html = (layer / "index.html").read_text(encoding="utf-8")
    assert 'href="features.html">Dictionary features</a>' in html
    assert f"R² <b>{record.quality['r2']:.3f}</b>" in html


def test_the_crops_are_published_and_counted_with_the_examples(built):
    tmp_path, layer, record = built
    site = tmp_path / "site"
    crops = {Path(e["crop"]).name for f in live(record) for e in f.examples}
    published = {p.name for p in (site / "images" / "dictionary").glob("*.jpg")}
    assert crops and published == crops
    size = sum((site / "images" / "dictionary" / name).stat().st_size for name in published)
    assert measure(site).examples >= size > 0


def copies(built, tmp_path) -> tuple[Path, Path]:
    """A copy of the build's cache and site, for a test that changes them."""
    root, _, _ = built
    shutil.copytree(root / "cache", tmp_path / "cache")
    shutil.copytree(root / "site", tmp_path / "site")
    return tmp_path / "cache", tmp_path / "site"


def test_a_site_rewritten_without_the_dictionary_drops_its_pages_crops_and_pictures(built, tmp_path):
    cache, site = copies(built, tmp_path)
    layer = next((site / "models").iterdir()) / "layers" / "features.5"
    pictures_before = len(list((site / "images" / "full").iterdir()))
    for path in (cache / "dictionary").glob("*.json"):
        path.unlink()
    write_site(cache, site)
    assert (layer / "index.html").is_file() and (layer / "0.html").is_file()
    assert not (layer / "features.html").exists() and not list(layer.glob("feature-*.html"))
    assert not (site / "images" / "dictionary").exists()
    # The three feature pictures are still cached but on no page: their images went as stale.
    assert len(list((site / "images" / "full").iterdir())) == pictures_before - 3
    assert "Dictionary features" not in (layer / "index.html").read_text(encoding="utf-8")


def test_a_missing_crop_is_left_out_with_a_warning_not_a_failed_site(built, tmp_path):
    cache, site = copies(built, tmp_path)
    _, layer_dir, record = built
    feature = next(f for f in record.features if f.picture)
    shutil.rmtree(site / "images" / "dictionary")
    (cache / "dictionary" / feature.examples[0]["crop"]).unlink()
    with pytest.warns(UserWarning, match="crops missing or malformed"):
        write_site(cache, site)
    page = site / layer_dir.relative_to(built[0] / "site") / f"feature-{feature.index}.html"
    html = page.read_text(encoding="utf-8")
    assert 0 < html.count('class="example"') < len(feature.examples)
    for target in targets(page):
        assert (page.parent / target).resolve().is_file(), target


def test_a_malformed_or_one_seed_record_does_not_break_the_site(built, tmp_path):
    cache, site = copies(built, tmp_path)
    path = next((cache / "dictionary").glob("*.json"))
    data = json.loads(path.read_text())
    data["features"][0]["examples"] = [{"crop": "../../outside.jpg", "value": 1.0}, "junk", {"value": "x"}]
    good = dict(data["features"][1]["examples"][0], heat="not base64!")   # a sound crop, a broken heatmap
    data["features"][1]["examples"] = [good, dict(good, heat=base64.b64encode(b"12345").decode())]
    data["features"][0]["channels"] = [["a", 1.0], [3, 0.5]]
    data["features"][0]["frequency"] = 0.9
    data["stability"] = None                       # one seed trained
    path.write_text(json.dumps(data))
    with pytest.warns(UserWarning, match="3 feature crops"):
        write_site(cache, site)
    layer = next((site / "models").iterdir()) / "layers" / "features.5"
    html = (layer / "feature-0.html").read_text(encoding="utf-8")
    assert 'class="example"' not in html and "channel 3</a> <span" in html
    assert not (site / "outside.jpg").exists()
    shown = (layer / "feature-1.html").read_text(encoding="utf-8")   # the crops, without a heatmap
    assert shown.count('class="example"') == 2 and 'class="heat"' not in shown
    assert "one seed trained: no stability" in (layer / "features.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_the_index_script_sorts_the_tiles_by_index_by_coherence_and_back(built, browser):
    _, layer, record = built
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto((layer / "features.html").as_uri())
    order = lambda: [int(n) for n in page.eval_on_selector_all("#feature-grid a", "els => els.map(e => e.dataset.index)")]
    by_frequency = [f.index for f in sorted(live(record), key=lambda f: (-f.frequency, f.index))]
    assert page.is_visible("#feature-sort") and order() == by_frequency
    page.click("button[data-key=index]")
    assert order() == sorted(by_frequency)
    page.click("button[data-key=coherence]")
    unknown = -2   # a feature without a coherence sorts last
    by_coherence = [f.index for f in sorted(live(record), key=lambda f: (-(f.coherence if f.coherence is not None
                                                                             else unknown), f.index))]
    assert order() == by_coherence and any(f.coherence is not None for f in live(record))
    page.click("button[data-key=frequency]")
    assert order() == by_frequency and not errors
    page.close()


@pytest.mark.slow
def test_each_crops_heatmap_lies_over_it_shows_its_own_frame_and_goes_while_hovered(built, browser):
    _, layer, record = built
    feature = next(f for f in record.features if f.picture and len(f.examples) >= 2)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto((layer / f"feature-{feature.index}.html").as_uri())
    page.locator("#examples").scroll_into_view_if_needed()
    heats = page.locator("#examples .heat")
    assert heats.count() == len(feature.examples)
    for n in (0, heats.count() - 1):
        crop = page.locator("#examples .ex-crop img").nth(n).bounding_box()
        heat = heats.nth(n).bounding_box()
        assert abs(heat["x"] - crop["x"]) <= 2 and abs(heat["width"] - crop["width"]) <= 2   # over the crop
        assert abs(heat["y"] - crop["y"]) <= 2 and abs(heat["height"] - crop["height"]) <= 2
        style = heats.nth(n).evaluate("e => { const s = getComputedStyle(e); return [s.backgroundImage, s.backgroundSize, s.backgroundPositionY]; }")
        assert style[0].startswith('url("data:image/png;base64,')
        assert style[1] == f"100% {100 * len(feature.examples)}%"                             # the sprite, a frame a crop
        assert style[2] == ("0%" if n == 0 else "100%")                                        # its own frame
    page.locator("#examples .example").first.hover()
    page.wait_for_function("getComputedStyle(document.querySelector('#examples .heat')).opacity === '0'", timeout=3000)
    page.close()
