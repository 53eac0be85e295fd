"""The static site, built from a tiny synthetic cache (tests/sitefixture.py)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
from PIL import Image

from atlas.store import cache
from atlas.core.errors import AtlasError
from atlas.core.reference import REFERENCE_CHANNELS, REFERENCE_CLASSES, reference_channel_label
from atlas.store.examples import UnreadableExamplesWarning, scan as scan_examples
from atlas.site import compare_to_examples, curve_plot, make_server, safe_name, write_site
from sitefixture import DEAD_CHANNEL, EXAMPLES_DATASET, HOSTILE_LAYER, add_examples, make_cache

ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    fx = make_cache(root / "cache")
    index = write_site(root / "cache", root / "site")
    return fx, root / "site", index


class Page(HTMLParser):
    """Every link and image reference of one page, plus a few things tests look at."""

    def __init__(self, text: str):
        super().__init__()
        self.refs: list[tuple[str, str]] = []      # (tag, url)
        self.scripts: list[dict] = []
        self.figures: list[dict] = []
        self.title = ""
        self._in_title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("href", "src"):
            if attrs.get(name) is not None:
                self.refs.append((tag, attrs[name]))
        if tag == "script":
            self.scripts.append(attrs)
        if tag == "figure" and "data-ref" in attrs:
            self.figures.append(attrs)
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        if self._in_title:
            self.title += data


def pages(site: Path) -> dict[Path, Page]:
    return {p: Page(p.read_text(encoding="utf-8")) for p in sorted(site.rglob("*.html"))}


def local_target(page: Path, url: str) -> Path | None:
    """The file a relative link points at, or None for in-page and data: links."""
    parts = urlsplit(url)
    assert not parts.scheme or parts.scheme == "data", f"{page.name}: external link {url}"
    assert not url.startswith("/"), f"{page.name}: absolute link {url}"
    if parts.scheme == "data" or not parts.path:
        return None
    return (page.parent / unquote(parts.path)).resolve()


def test_every_page_renders(built):
    fx, site, index = built
    assert index == site / "index.html"
    found = pages(site)
    for slug, layer, i in fx.units | fx.failed:
        assert site / "models" / slug / "layers" / safe_name(layer) / f"{i}.html" in found
    for slug in ("vgg16-a1b2c3", "vgg19-0f0e0d"):
        for name in ("index.html", "classes.html", "results.html"):
            assert site / "models" / slug / name in found
    for path, page in found.items():
        text = path.read_text(encoding="utf-8")
        assert text.startswith("<!doctype html>") and text.rstrip().endswith("</html>"), path
        assert page.title.strip(), path
    assert (site / ".nojekyll").exists() and (site / "style.css").exists()


def test_no_broken_links_or_missing_images(built):
    _, site, _ = built
    site = site.resolve()
    checked = 0
    for path, page in pages(site).items():
        for tag, url in page.refs:
            target = local_target(path.resolve(), url)
            if target is None:
                continue
            assert target.is_relative_to(site), f"{path}: {url} leaves the site"
            assert target.is_file(), f"{path.relative_to(site)}: broken {tag} {url}"
            if tag == "img":
                with Image.open(target) as image:
                    image.verify()
            checked += 1
    assert checked > 100


def test_every_page_reachable_from_home(built):
    _, site, index = built
    site = site.resolve()
    seen, todo = set(), [index.resolve()]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for _, url in Page(path.read_text(encoding="utf-8")).refs:
            target = local_target(path, url)
            if target is not None and target.suffix == ".html":
                todo.append(target)
    assert seen == {p.resolve() for p in site.rglob("*.html")}


def test_hostile_names_are_escaped(built):
    _, site, _ = built
    for path, page in pages(site).items():
        text = path.read_text(encoding="utf-8")
        assert "<script>alert" not in text, path
        # The only script is the class filter, loaded from the site itself.
        assert all(s.get("src", "").endswith("filter.js") for s in page.scripts), path
    layer_dir = site / "models/vgg16-a1b2c3/layers" / safe_name(HOSTILE_LAYER)
    for page in (layer_dir / "index.html", layer_dir / "0.html", site / "models/vgg16-a1b2c3/index.html",
                 site / "models/vgg16-a1b2c3/classes.html", site / "models/vgg16-a1b2c3/layers/classifier.6/5.html",
                 site / "models/vgg16-a1b2c3/layers/features.12/105.html"):
        text = page.read_text(encoding="utf-8")
        assert ESCAPED in text and "&amp;amp;" in text and "ü漢" in text, page
    assert re.fullmatch(r"[A-Za-z0-9._-]+", layer_dir.name)


def test_results_page_holds_exactly_the_reference_units(built):
    _, site, _ = built
    text = (site / "models/vgg16-a1b2c3/results.html").read_text(encoding="utf-8")
    channel_part, class_part = text.split('id="class-table"')
    channels = Page(channel_part).figures
    classes = Page(class_part).figures
    assert [f["data-ref"] for f in channels] == [reference_channel_label(n, k) for n, k in REFERENCE_CHANNELS]
    assert [int(f["data-ref"]) for f in classes] == list(REFERENCE_CLASSES)

    # Rendered cells show their image and link to the unit page; the rest say how to render them.
    def cell(part, ref):
        return re.search(rf'data-ref="{re.escape(ref)}">(.*?)</figure>', part, re.S).group(1)

    for ref, unit_page in (("Layer(0)[63]", "features.0/63.html"), ("Layer(12)[3]", "features.12/3.html"),
                           ("Layer(28)[54]", "features.28/54.html")):
        assert f'href="layers/{unit_page}"' in cell(channel_part, ref) and "<img" in cell(channel_part, ref)
    assert "render failed" in cell(channel_part, "Layer(12)[105]")
    assert "atlas build vgg16 --preset results" in cell(channel_part, "Layer(14)[181]")
    assert "<img" in cell(class_part, "1") and "goldfish" in cell(class_part, "1")
    assert "render failed" in cell(class_part, "7")
    assert "atlas build vgg16 --preset results" in cell(class_part, "987")
    assert channel_part.count("<img") == 5 and class_part.count("<img") == 2

    vgg19 = (site / "models/vgg19-0f0e0d/results.html").read_text(encoding="utf-8")
    assert "vgg19 has no layer features.12" in vgg19
    assert "atlas build vgg19 --preset results" in vgg19


def test_unit_page_shows_every_render_and_its_facts(built):
    _, site, _ = built
    layers = site / "models/vgg16-a1b2c3/layers"
    text = (layers / "features.12/3.html").read_text(encoding="utf-8")
    for variant in ("channel", "negative channel", "channel ×3", "neuron"):
        assert f"<h2>{variant}</h2>" in text
    assert text.index("<h2>channel</h2>") < text.index("<h2>negative channel</h2>")
    assert text.count("images/full/") == 2 * 6  # six images, each an <a> around an <img>
    assert "<polyline" in text and "final value" in text and "on cpu" in text
    assert 'rel="next" href="105.html"' in text and "← first" in text

    failed = (layers / "features.12/105.html").read_text(encoding="utf-8")
    assert "Render failed" in failed and "images/full/" not in failed

    cls = (layers / "classifier.6/1.html").read_text(encoding="utf-8")
    assert "goldfish" in cls and "class probability" in cls and "%" in cls
    assert "../../../vgg19-0f0e0d/layers/classifier.6/1.html" in cls  # same class, other model

    channel54 = (layers / "features.28/54.html").read_text(encoding="utf-8")
    assert 'href="../features.19/54.html"' in channel54        # same channel, other layer
    assert "vgg19-0f0e0d/layers/features.28/54.html" in channel54


def test_newest_render_of_a_unit_wins(built):
    fx, site, _ = built
    text = (site / "models/vgg16-a1b2c3/layers/features.28/54.html").read_text(encoding="utf-8")
    assert fx.fresh_key in text and fx.stale_key not in text
    assert not list((site / "images").rglob(f"{fx.stale_key}*"))


def test_layer_grid_is_lazy_thumbnails(built):
    _, site, _ = built
    text = (site / "models/vgg16-a1b2c3/layers/features.0/index.html").read_text(encoding="utf-8")
    renders = text.split('id="renders-panel"')[1].split('id="examples-panel"')[0]
    thumbs = re.findall(r'<img src="([^"]+)"[^>]*loading="lazy"', renders)
    assert len(thumbs) == 4 and all(t.endswith(".webp") for t in thumbs)
    classes = (site / "models/vgg16-a1b2c3/classes.html").read_text(encoding="utf-8")
    assert classes.count("<li ") == 1000 and 'id="class-filter"' in classes


def test_rewrite_drops_stale_pages_and_reuses_images(tmp_path):
    fx = make_cache(tmp_path / "cache")
    write_site(tmp_path / "cache", tmp_path / "site")
    thumbs = {p: p.stat().st_mtime_ns for p in (tmp_path / "site/images/thumb").iterdir()}
    gone = next(e for e in cache.scan(tmp_path / "cache") if e.meta["unit"] == {
        "layer": "features.0", "index": 1, "objective": "channel", "negative": False, "diversity": 1})
    next((tmp_path / "cache/entries").glob(f"*/{gone.key}.json")).unlink()
    (tmp_path / "site/images/thumb/leftover.webp").write_bytes(b"x")

    write_site(tmp_path / "cache", tmp_path / "site")
    layer = tmp_path / "site/models/vgg16-a1b2c3/layers/features.0"
    assert not (layer / "1.html").exists() and (layer / "2.html").exists()
    assert not (tmp_path / "site/images/thumb/leftover.webp").exists()
    assert not list((tmp_path / "site/images").rglob(f"{gone.key}*"))
    for path, mtime in thumbs.items():
        if gone.key not in path.name:
            assert path.stat().st_mtime_ns == mtime, f"{path.name} was made again"
    assert fx.units


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.html").write_text("keep me")
    with pytest.raises(AtlasError, match="not written by atlas"):
        write_site(tmp_path / "cache", tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.html").exists()


def test_gh_pages_worktree_can_be_the_site_folder(tmp_path):
    (tmp_path / "site/.git/refs/tags").mkdir(parents=True)      # an empty folder git wants kept
    (tmp_path / "site/.git/info.html").write_text("not a page")
    make_cache(tmp_path / "cache")
    write_site(tmp_path / "cache", tmp_path / "site")
    assert (tmp_path / "site/.git/refs/tags").is_dir() and (tmp_path / "site/.git/info.html").exists()


def test_empty_cache_gives_a_home_page_that_says_so(tmp_path):
    index = write_site(tmp_path / "nothing", tmp_path / "site")
    assert "No models built yet" in index.read_text(encoding="utf-8")


def test_curve_plot_survives_odd_curves():
    assert curve_plot([]) is None and curve_plot([1.0]) is None
    plot = curve_plot([float("nan"), 1.0, float("inf"), 2.0, 2.0])
    assert plot["min"] == 1.0 and plot["max"] == 2.0 and plot["steps"] == 5
    long = curve_plot([float(i) for i in range(5000)])
    assert len(long["points"].split()) <= 260
    assert curve_plot([3.0, 3.0])["points"]  # flat curve: no division by zero


def test_preview_server_serves_the_site(built):
    _, site, _ = built
    server = make_server(site, port=0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/"
        with urllib.request.urlopen(base + "index.html", timeout=5) as reply:
            assert b"Feature visualization atlas" in reply.read()
        thumb = next((site / "images/thumb").iterdir()).name
        with urllib.request.urlopen(base + "images/thumb/" + thumb, timeout=5) as reply:
            assert reply.headers["Content-Type"] == "image/webp"
        full = next((site / "images/full").iterdir()).name
        with urllib.request.urlopen(base + "images/full/" + full, timeout=5) as reply:
            assert reply.headers["Content-Type"] == "image/avif"
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- dataset examples

def _examples(text: str) -> list[tuple[str, str, str]]:
    """(crop src, shown value, file tooltip) of each example on a unit page, in order."""
    grid = text.split('class="example-grid"')[1].split("</ol>")[0]
    return re.findall(r'<li class="example" title="([^"]*)">\s*<img src="([^"]+)".*?'
                      r'<span class="rank">\d+</span> ([^<]+)</span>', grid, re.S)


def _final(fx, layer: str, index: int, objective: str = "channel") -> float:
    entry = next(e for e in cache.scan(fx.root) if e.meta["model"] == "vgg16" and e.meta["unit"] == {
        "layer": layer, "index": index, "objective": objective, "negative": False, "diversity": 1})
    return entry.meta["final_objective"]


def _shown_ratio(text: str) -> float:
    """The ratio a page prints beside the render, read back as a number (thousands
    separators and the typographic minus undone)."""
    match = re.search(r"<b>([−\d.,]+)×</b> the best natural example", text)
    assert match, "no ratio shown"
    return float(match[1].replace(",", "").replace("−", "-"))


def test_unit_page_shows_top_examples_and_the_ratio(built):
    fx, site, _ = built
    layers = site / "models/vgg16-a1b2c3/layers"
    text = (layers / "features.12/3.html").read_text(encoding="utf-8")
    shown = _examples(text)
    assert len(shown) == 9                                       # k = 9, best first
    values = [float(v) for _, _, v in shown]
    assert values == sorted(values, reverse=True) and values[0] == 2.5
    assert all(src.startswith("../../../../images/examples/") and src.endswith(".jpg") for _, src, _ in shown)
    assert shown[0][0].startswith("n03/photo_021.jpg")           # the source file is the tooltip
    assert _shown_ratio(text) == pytest.approx(_final(fx, "features.12", 3) / 2.5, rel=0.06, abs=0.006)
    assert text.count("the best natural example") == 2           # beside the render and over the grid
    # Under the main render, before the other variants; the ratio is for the plain channel render only.
    assert text.index("<h2>channel</h2>") < text.index('id="examples"') < text.index("<h2>negative channel</h2>")
    assert "receptive-field crops (64 px of the 224 px view)" in text and "over 48 images" in text
    assert ">photos</code>" in text

    cls = (layers / "classifier.6/1.html").read_text(encoding="utf-8")
    assert len(_examples(cls)) == 5 and "whole images" in cls and "by class logit" in cls
    assert _shown_ratio(cls) == pytest.approx(_final(fx, "classifier.6", 1, "logit") / 1.5, rel=0.06, abs=0.006)

    failed = (layers / "features.12/105.html").read_text(encoding="utf-8")  # examples, but nothing to compare
    assert len(_examples(failed)) == 9 and 'class="ratio"' not in failed

    dead = (layers / f"features.0/{DEAD_CHANNEL}.html").read_text(encoding="utf-8")
    assert "no ratio" in dead and "×" not in dead.split('id="examples"')[1]

    for page in (site / "models/vgg19-0f0e0d/layers/features.28/54.html", layers / "features.28/54.html"):
        assert 'id="examples"' not in page.read_text(encoding="utf-8")   # no examples stored there


def test_examples_never_leak_the_dataset_path_and_stale_results_stay_out(built):
    fx, site, _ = built
    for path in site.rglob("*.html"):
        assert EXAMPLES_DATASET not in path.read_text(encoding="utf-8"), path
    published = {p.name for p in (site / "images/examples").iterdir()}
    stale = fx.root / "examples" / fx.stale_examples_key
    fresh = fx.root / "examples" / fx.examples["features.12"]
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()[:20] + ".jpg"
    assert {digest(p) for p in fresh.iterdir()} <= published
    assert not {digest(p) for p in stale.iterdir()} & published
    assert "over 20 images" not in (site / "models/vgg16-a1b2c3/layers/features.12/3.html").read_text()


def test_layer_page_toggles_between_renders_and_examples(built):
    _, site, _ = built
    text = (site / "models/vgg16-a1b2c3/layers/features.0/index.html").read_text(encoding="utf-8")
    assert 'id="show-renders" checked' in text and 'id="show-examples"' in text
    assert 'label for="show-examples"' in text and "<script" not in text    # CSS alone switches views
    examples = text.split('id="examples-panel"')[1]
    assert examples.count("<img ") == 64                                     # best crop of every channel
    for index in (0, 1, 2, 63):                                               # rendered: linked
        assert f'href="{index}.html#examples"' in examples
    assert "#show-examples:checked ~ #renders-panel" in (site / "style.css").read_text()
    plain = (site / "models/vgg16-a1b2c3/layers/features.28/index.html").read_text(encoding="utf-8")
    assert "show-examples" not in plain                                      # no examples: no toggle


def test_example_crops_are_named_by_content_and_removed_when_stale(tmp_path):
    fx = make_cache(tmp_path / "cache")
    write_site(tmp_path / "cache", tmp_path / "site")
    unit = tmp_path / "site/models/vgg16-a1b2c3/layers/features.12/3.html"
    first = _examples(unit.read_text(encoding="utf-8"))[0][1]
    crop = tmp_path / "cache/examples" / fx.examples["features.12"] / "pool-3.jpg"   # channel 3, rank 0
    old_site_file = (unit.parent / first).resolve()
    assert old_site_file.read_bytes() == crop.read_bytes()

    replacement = tmp_path / "new.jpg"                # the crop is rewritten (a torn result redone)
    Image.new("RGB", (112, 112), (200, 30, 30)).save(replacement)
    replacement.replace(crop)
    write_site(tmp_path / "cache", tmp_path / "site")
    now = _examples(unit.read_text(encoding="utf-8"))[0][1]
    assert now != first and (unit.parent / now).resolve().read_bytes() == crop.read_bytes()
    assert not old_site_file.exists()

    # A layer's result removed from the cache: its crops leave the site, its pages drop the section.
    (tmp_path / "cache/examples" / f"{fx.examples['features.0']}.json").unlink()
    before = len(list((tmp_path / "site/images/examples").iterdir()))
    write_site(tmp_path / "cache", tmp_path / "site")
    assert len(list((tmp_path / "site/images/examples").iterdir())) < before
    assert 'id="examples"' not in (unit.parent.parent / "features.0/0.html").read_text(encoding="utf-8")


def test_broken_examples_are_skipped_with_a_warning(tmp_path):
    fx = make_cache(tmp_path / "cache")
    folder = tmp_path / "cache/examples"
    (folder / "torn.json").write_text('{"model": "vgg16", "chan')
    (folder / "list.json").write_text("[1, 2]")
    (folder / fx.examples["features.12"] / "pool-3.jpg").unlink()        # channel 3's best crop is gone
    result = json.loads((folder / f"{fx.examples['classifier.6']}.json").read_text())
    result["channels"][1][0]["crop"] = "../../entries/x.jpg"              # a doctored path leaves the cache
    (folder / f"{fx.examples['classifier.6']}.json").write_text(json.dumps(result))
    with pytest.warns(UnreadableExamplesWarning) as caught:
        found = scan_examples(tmp_path / "cache")
    assert {str(w.message).split()[3] for w in caught} == {"list.json", "torn.json"}
    assert len(found) == 3 and found[("vgg16", "a1b2c3d4e5f6a7b8", "features.12")]["key"] == fx.examples["features.12"]

    with pytest.warns(UserWarning):
        write_site(tmp_path / "cache", tmp_path / "site")
    layers = tmp_path / "site/models/vgg16-a1b2c3/layers"
    shown = _examples((layers / "features.12/3.html").read_text(encoding="utf-8"))
    assert len(shown) == 8 and float(shown[0][2]) < 2.5                  # the missing crop is left out ...
    assert len(_examples((layers / "classifier.6/1.html").read_text(encoding="utf-8"))) == 4
    for path in tmp_path.joinpath("site").rglob("*.html"):                 # ... and nothing links to it
        for _, url in Page(path.read_text(encoding="utf-8")).refs:
            target = local_target(path.resolve(), url)
            assert target is None or target.is_file(), f"{path}: broken {url}"


def test_newest_examples_result_of_a_layer_wins(tmp_path):
    card = {"name": "m", "fingerprint": "f" * 16}
    old = add_examples(tmp_path, card, "conv", 2, 3, False, images=10, mtime=1_000_000)
    new = add_examples(tmp_path, card, "conv", 2, 3, False, images=11, mtime=2_000_000)
    assert scan_examples(tmp_path)[("m", "f" * 16, "conv")]["key"] == new
    os.utime(tmp_path / "examples" / f"{old}.json", (3_000_000, 3_000_000))
    assert scan_examples(tmp_path)[("m", "f" * 16, "conv")]["key"] == old
    assert scan_examples(tmp_path / "nothing") == {}


def test_ratio_to_the_best_example_guards_zero_and_negative():
    assert compare_to_examples(6.4, 2.0)["text"] == "3.2× the best natural example"
    assert compare_to_examples(1.0, 4.0)["ratio_text"] == "0.25×"
    assert compare_to_examples(250.0, 2.0)["ratio_text"] == "125×"
    assert compare_to_examples(-1.0, 2.0)["ratio_text"] == "−0.50×"      # the render failed to excite it
    for best in (0.0, -0.3, 1e-12):
        c = compare_to_examples(5.0, best)
        assert c["ratio"] is None and "no ratio" in c["text"]
    assert compare_to_examples(None, 2.0) is None and compare_to_examples(3.0, None) is None
    assert compare_to_examples(3.0, 1.0, 128, 224)["note"] == "visualization at 128 px, examples at 224 px"
    assert compare_to_examples(3.0, 1.0, 224, 224)["note"] == ""


def test_site_size_is_reported_by_kind_and_warns_over_budget(tmp_path):
    from click.testing import CliRunner
    from atlas.cli import main
    from atlas.site import measure

    make_cache(tmp_path / "cache")
    write_site(tmp_path / "cache", tmp_path / "site")
    size = measure(tmp_path / "site")
    on_disk = sum(p.stat().st_size for p in (tmp_path / "site").rglob("*") if p.is_file())
    assert size.total == on_disk and size.files == sum(1 for p in (tmp_path / "site").rglob("*") if p.is_file())
    assert size.full == sum(p.stat().st_size for p in (tmp_path / "site/images/full").iterdir())
    assert size.thumbs > 0 and size.examples > 0 and size.pages > 0

    run = CliRunner().invoke(main, ["render", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "site")])
    assert run.exit_code == 0 and "site size: " in run.output and "full images" in run.output, run.output
    assert "warning" not in run.output
    run = CliRunner().invoke(main, ["render", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "site"),
                                    "--site-budget", "100kB"])
    assert run.exit_code == 0 and "over the 100.0 kB budget" in run.output and "--site-budget" in run.output
    run = CliRunner().invoke(main, ["render", "--cache-dir", str(tmp_path / "cache"), "--site-budget", "lots"])
    assert run.exit_code != 0 and "not a size" in run.output


def test_published_images_are_web_formats_and_only_main_renders_get_thumbnails(built):
    fx, site, _ = built
    full = list((site / "images/full").iterdir())
    assert full and all(p.suffix == ".avif" for p in full)
    with Image.open(full[0]) as image:
        assert image.format == "AVIF" and image.size == (32, 32)
    # One thumbnail per unit shown in a grid: none for variants (negative, neuron,
    # diverse) or DeepDream renders, which pages show full size. A direction and the
    # two caricatures are shown in strips, so they have one too.
    assert len(list((site / "images/thumb").iterdir())) == len(fx.units) + 3


def test_entry_metadata_from_older_versions_still_reads():
    from atlas.core.entry import EntryMeta
    from atlas.core.units import Unit

    old = EntryMeta.from_dict({"unit": {"layer": "features.0", "index": 3}, "status": "ok",
                               "final_objective": "nan", "seconds": "2.5", "curve": [1, None, "x", 3]})
    assert old.unit == Unit("features.0", 3) and old.ok and old.final_objective is None and old.seconds == 2.5
    assert len(old.curve) == 4 and old.settings == {} and old.size is None and old.created_at == 0.0
    failed = EntryMeta.from_dict({"unit": {"layer": "l", "index": 0}, "status": "failed"})
    assert not failed.ok and failed.error == "unknown error"
    again = EntryMeta.from_dict(old.to_dict())
    assert again.unit == old.unit and again.seconds == old.seconds
