"""Dictionary features on the site: the layer's feature index, feature pages, the links
between features and channels, and every image and link resolving inside the site."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from atlas.store import dictionary as stored
from test_activation_atlas import photo_folder
from test_dictionary import build


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("features-site")
    result = build(tmp_path, photo_folder(tmp_path / "photos", 30), "--channels", "16")
    assert result.exit_code == 0, result.output
    record = next(iter(stored.scan(tmp_path / "cache").values()))
    layer = next((tmp_path / "site" / "models").iterdir()) / "layers" / "features.5"
    return tmp_path / "site", layer, record


def targets(page: Path) -> list[str]:
    html = page.read_text(encoding="utf-8")
    return [unquote(t) for t in re.findall(r'(?:href|src)="([^"#]+)', html) if not t.startswith(("http", "mailto", "data:"))]


def test_every_link_and_image_of_the_feature_pages_resolves(built):
    site, layer, _ = built
    pages = [layer / "features.html", *layer.glob("feature-*.html"), layer / "index.html"]
    assert len(pages) > 3
    for page in pages:
        for target in targets(page):
            assert (page.parent / target).resolve().is_file(), f"{page.name} -> {target}"


def test_the_index_shows_the_measures_and_every_live_feature_in_two_orders(built):
    _, layer, record = built
    html = (layer / "features.html").read_text(encoding="utf-8")
    live = [f for f in record.features if f.frequency > 0]
    assert f"R² <b>{record.quality['r2']:.3f}</b>" in html and f"L0 <b>{record.quality['l0']:.1f}</b>" in html
    assert f"stability <b>{record.stability:.2f}</b>" in html and f"<b>{len(live)}</b> live features of 32" in html
    frequency, index = html.split('id="index-panel"')
    tiles = lambda part: [int(n) for n in re.findall(r'href="feature-(\d+)\.html"', part)]
    by_frequency = sorted(live, key=lambda f: (-f.frequency, f.index))
    assert tiles(frequency) == [f.index for f in by_frequency]
    assert tiles(index) == sorted(f.index for f in live)


def test_a_pictured_feature_page_shows_its_picture_photos_and_channels(built):
    site, layer, record = built
    feature = next(f for f in record.features if f.picture)
    html = (layer / f"feature-{feature.index}.html").read_text(encoding="utf-8")
    assert "images/full/" in html and html.count('class="example"') == len(feature.examples) > 0
    channel, weight = feature.channels[0]
    assert f"channel {channel}" in html and f"{weight:+.3f}" in html
    assert f'href="{channel}.html"' in html          # channels 0-15 are rendered: linked
    assert f"{feature.frequency * 100:.2f} %" in html


def test_a_channel_page_lists_the_features_it_takes_part_in(built):
    _, layer, record = built
    channel = record.features[0].channels[0][0]
    naming = {f.index for f in record.features if f.frequency > 0 and any(c == channel for c, _ in f.channels)}
    html = (layer / f"{channel}.html").read_text(encoding="utf-8")
    listed = {int(n) for n in re.findall(r'href="feature-(\d+)\.html"', html)}
    assert listed and listed <= naming and len(listed) == min(len(naming), 12)


def test_the_layer_page_links_its_features_and_the_site_size_counts_their_crops(built):
    site, layer, _ = built
    html = (layer / "index.html").read_text(encoding="utf-8")
    assert 'href="features.html"' in html and "R² <b>" in html
    assert list((site / "images" / "dictionary").glob("*.jpg"))
    from atlas.site.size import measure
    assert measure(site).examples >= sum(p.stat().st_size for p in (site / "images" / "dictionary").glob("*.jpg"))
