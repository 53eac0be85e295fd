"""Circuits on the site: connections, top-5 labels, directions and caricatures (tests/sitefixture.py)."""

from __future__ import annotations

import re

import pytest

from atlas.site import write_site
from sitefixture import HOSTILE, INHIBITING_INPUT, STRONG_INPUT, make_cache

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("circuits-site")
    fx = make_cache(root / "cache")
    write_site(root / "cache", root / "site")
    return fx, root / "site" / "models" / "vgg16-a1b2c3"


def _section(text: str, ident: str) -> str:
    return text.split(f'id="{ident}"')[1].split("</ol>")[0]


def test_unit_page_lists_inputs_ranked_with_sign_thumbnail_and_heatmap(built):
    _, model = built
    text = (model / "layers/features.12/3.html").read_text(encoding="utf-8")
    inputs = _section(text, "inputs")
    links = re.findall(r'href="([^"]+)"', inputs)
    # Strongest rendered inputs first: channel 2 (excites), then channel 1 (inhibits).
    assert links[:2] == [f"../features.0/{STRONG_INPUT}.html", f"../features.0/{INHIBITING_INPUT}.html"]
    first, second = inputs.split('<li class="conn ')[1:3]
    assert first.startswith("excites") and second.startswith("inhibits")
    assert "#1 of 64" in first and ".webp" in first and "<svg class=\"heat\"" in first
    assert first.count("<rect") == 9   # the 3x3 kernel


def test_the_input_unit_lists_this_unit_among_its_outputs(built):
    _, model = built
    text = (model / f"layers/features.0/{STRONG_INPUT}.html").read_text(encoding="utf-8")
    assert 'href="../features.12/3.html"' in _section(text, "outputs")


def test_deepest_layer_drives_classes_and_class_pages_list_their_channels(built):
    _, model = built
    unit = (model / "layers/features.28/54.html").read_text(encoding="utf-8")
    outputs = _section(unit, "outputs")
    assert 'href="../classifier.6/1.html"' in outputs and "goldfish" in outputs
    cls = (model / "layers/classifier.6/1.html").read_text(encoding="utf-8")
    assert 'href="../features.28/' in _section(cls, "inputs")


def test_top5_labels_are_shown_and_the_class_index_finds_channels_by_name(built):
    _, model = built
    text = (model / "layers/features.0/0.html").read_text(encoding="utf-8")
    labels = text.split('id="labels"')[1].split("</section>")[0]
    assert labels.count("<li>") == 5 and "goldfish" in labels and "60.0 %" in labels
    assert 'href="../classifier.6/1.html"' in labels    # the class has its own page
    assert ESCAPED in labels and HOSTILE not in labels  # class 5's hostile name, escaped
    classes = (model / "classes.html").read_text(encoding="utf-8")
    goldfish = classes.split('data-search="1 goldfish"')[1].split("</li>")[0]
    assert "called so:" in goldfish and 'href="layers/features.0/0.html"' in goldfish


def test_direction_has_its_own_page_and_a_place_on_its_layer(built):
    _, model = built
    page = (model / "layers/features.12/direction-0.html").read_text(encoding="utf-8")
    assert "features.12 direction 0" in page and "images/full/" in page
    layer = (model / "layers/features.12/index.html").read_text(encoding="utf-8")
    assert 'href="direction-0.html"' in layer and "Random directions" in layer
    assert (model / "layers/features.12/3.html").read_text(encoding="utf-8").count("direction") == 0


def test_photo_page_shows_the_photo_beside_every_layers_caricature(built):
    fx, model = built
    page = (model / f"photos/{fx.photo}.html").read_text(encoding="utf-8")
    assert page.count('<figure class="caricature') == 3
    assert "features.0</a>" in page and "features.12</a>" in page
    assert ESCAPED in page and HOSTILE not in page
    layer = (model / "layers/features.0/index.html").read_text(encoding="utf-8")
    assert f'href="../../photos/{fx.photo}.html"' in layer and "Caricatures" in layer
    home = (model / "index.html").read_text(encoding="utf-8")
    assert f'href="photos/{fx.photo}.html"' in home


def test_a_layer_without_connections_pages_say_nothing_false(built):
    _, model = built
    text = (model / "layers/features.19/54.html").read_text(encoding="utf-8")
    assert 'id="inputs"' not in text and 'id="outputs"' not in text


def test_partly_rendered_layers_also_name_the_strongest_channels_of_all(built):
    _, model = built
    text = (model / "layers/features.12/3.html").read_text(encoding="utf-8")
    line = text.split('class="muted small overall"')[1].split("</p>")[0]
    assert "Strongest of all 64 channels" in line
    assert line.index(f"[{STRONG_INPUT}]") < line.index(f"[{INHIBITING_INPUT}]")
