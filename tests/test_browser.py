"""The site in a real browser: Debian's headless Chromium driven by Playwright.

Walks home → model → layer → unit on a local server, checks every image loaded
and the console stayed clean, uses the class filter, and saves a screenshot of
each page type into test-output/screenshots/ for a person to look at.

Needs `pip install playwright` and `apt-get install chromium` (Playwright's own
browser download is not used). Without them the tests skip, except under CI
(CI=true), where a missing browser is a failure rather than a silent skip.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from atlas.site import make_server, write_site
from sitefixture import make_cache, make_full_vgg16

pytestmark = pytest.mark.slow   # starts a browser

OUTPUT = Path(__file__).resolve().parents[1] / "test-output"
SHOTS = OUTPUT / "screenshots"
FIRST_VIEW_LIMIT = 2_000_000   # bytes: HTML plus the images a first view loads
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run under CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (pip install playwright)")
    executable = os.environ.get("ATLAS_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not executable:
        _missing("no chromium on PATH (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _served(root, fill_cache):
    """Fill a cache under `root`, write its site and serve it: yields (site folder, URL)."""
    fill_cache(root / "cache")
    write_site(root / "cache", root / "site")
    server = make_server(root / "site", port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root / "site", f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    yield from _served(tmp_path_factory.mktemp("browser"), make_cache)


class Watched:
    """A page whose console errors, failed requests and dialogs are collected."""

    def __init__(self, browser, **options):
        self.context = browser.new_context(viewport={"width": 1280, "height": 860}, **options)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", self._failed)
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status}: {r.url}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))

    def _failed(self, request) -> None:
        # Leaving a page aborts the loads still in flight (net::ERR_ABORTED): the browser's
        # doing, not the site's. A missing file fails otherwise (HTTP 404, ERR_FILE_NOT_FOUND).
        if request.failure != "net::ERR_ABORTED":
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    # The images a visitor can see: not those in a hidden panel (a lazy image there never loads).
    SHOWN = "Array.from(document.images).filter(i => i.getClientRects().length > 0)"

    def check_images(self) -> int:
        """Scroll every shown image into view (lazy ones load then), wait, and assert all decoded."""
        page = self.page
        page.evaluate("""async () => {
            for (const img of %s) {
                img.scrollIntoView({block: 'center', inline: 'center'});
                await new Promise(r => requestAnimationFrame(r));
            }
        }""" % self.SHOWN)
        page.wait_for_function(f"{self.SHOWN}.every(i => i.complete)", timeout=10_000)
        broken = page.evaluate(f"{self.SHOWN}.filter(i => i.naturalWidth === 0).map(i => i.src)")
        assert not broken, f"{page.url}: images did not load: {broken}"
        page.evaluate("window.scrollTo(0, 0)")
        return page.evaluate(f"{self.SHOWN}.length")

    def shot(self, name: str, full_page: bool = True) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)

    def close(self) -> None:
        self.context.close()
        assert not self.problems, self.problems


def test_home_model_layer_unit(browser, site):
    _, base = site
    w = Watched(browser)
    page = w.page
    page.goto(base + "index.html")
    assert w.check_images() >= 8
    w.shot("home")

    page.click("text=vgg16 >> nth=0")
    page.wait_for_url("**/models/vgg16-a1b2c3/index.html")
    assert w.check_images() > 10
    w.shot("model")

    page.click(".layer-head a:text-is('features.28')")
    page.wait_for_url("**/layers/features.28/index.html")
    assert w.check_images() == 3     # two channels and the DeepDream render of the layer
    w.shot("layer")

    page.click(".grid a.tile >> nth=0")
    page.wait_for_url("**/layers/features.28/54.html")
    assert page.locator("svg polyline").count() == 1
    assert w.check_images() >= 3     # full image plus the same channel elsewhere
    w.shot("unit")

    page.click("a[rel=next]")
    page.wait_for_url("**/layers/features.28/264.html")

    page.goto(base + "models/vgg16-a1b2c3/layers/features.12/3.html")   # all variants
    # channel, negative, neuron, three diverse images; 9 examples; 4 rendered input units
    assert w.check_images() == 6 + 9 + 4
    w.shot("unit-variants")
    page.goto(base + "models/vgg16-a1b2c3/layers/features.12/105.html")
    assert page.locator(".failbox").is_visible()
    w.shot("unit-failed")
    w.close()


def test_unit_page_shows_dataset_examples(browser, site):
    _, base = site
    w = Watched(browser)
    page = w.page
    page.goto(base + "models/vgg16-a1b2c3/layers/features.12/3.html")
    examples = page.locator("#examples .example-grid img")
    assert examples.count() == 9
    assert w.check_images() == 6 + 9 + 4  # the renders of features.12[3], its top examples, its inputs
    box = page.locator(".render").first.bounding_box()
    assert page.locator("#examples").bounding_box()["y"] > box["y"] + box["height"] - 1  # under the visualization
    assert "the best natural example" in page.locator("#examples .ratio").inner_text()
    page.set_viewport_size({"width": 1280, "height": 1000})
    w.shot("unit-examples", full_page=False)

    page.goto(base + "models/vgg16-a1b2c3/layers/classifier.6/1.html")   # class unit: whole images
    assert page.locator("#examples .example-grid img").count() == 5
    assert w.check_images() >= 2 + 5
    w.shot("unit-class-examples")
    w.close()


def test_walk_the_network_through_connections(browser, site):
    """From a unit page, follow an input connection to the unit feeding it, and come back
    through that unit's list of outputs."""
    _, base = site
    w = Watched(browser)
    page = w.page
    page.goto(base + "models/vgg16-a1b2c3/layers/features.12/3.html")
    first = page.locator("#inputs li.conn").first
    assert "excites" in first.inner_text() and first.locator("svg.heat rect").count() == 9
    page.locator("#connections").scroll_into_view_if_needed()
    w.shot("unit-connections", full_page=False)
    first.locator("a.conn-unit").click()
    page.wait_for_url("**/layers/features.0/2.html")
    assert w.check_images() >= 2
    back = page.locator("#outputs a.conn-unit[href$='features.12/3.html']")
    assert back.count() == 1
    back.click()
    page.wait_for_url("**/layers/features.12/3.html")
    assert page.locator("h1").inner_text().startswith("features.12[3]")
    assert page.locator("#labels li").count() == 5

    page.goto(base + "models/vgg16-a1b2c3/layers/features.0/index.html")
    page.locator(".caricatures a.tile").first.click()
    page.wait_for_url("**/photos/*.html")
    assert w.check_images() == 3     # the photo and two layers' caricatures
    w.shot("photo-caricatures")
    w.close()


@pytest.mark.parametrize("script", [True, False], ids=["js", "no-js"])
def test_layer_page_toggles_to_top_examples(browser, site, script):
    _, base = site
    w = Watched(browser, java_script_enabled=script)
    page = w.page
    page.goto(base + "models/vgg16-a1b2c3/layers/features.0/index.html")
    assert page.locator("#renders-panel").is_visible() and not page.locator("#examples-panel").is_visible()
    if script:                           # (page.evaluate needs scripts: without them, look only)
        assert w.check_images() == 4 + 1  # four channels and the layer's caricature of a photo
    page.click("label[for=show-examples]")
    assert page.locator("#examples-panel").is_visible() and not page.locator("#renders-panel").is_visible()
    if script:
        assert w.check_images() == 64 + 1  # the best crop of each channel; the caricature above the tabs
        w.shot("layer-examples", full_page=False)
    page.click("#examples-panel a.example-tile >> nth=0")
    page.wait_for_url("**/layers/features.0/0.html#examples")
    page.wait_for_load_state("networkidle")   # leaving mid-load would abort its lazy thumbnails
    page.go_back()                       # (the browser may restore the examples view here)
    page.click("label[for=show-renders]")
    assert page.locator("#renders-panel").is_visible()
    page.wait_for_load_state("networkidle")   # thumbnails shown again load before the page closes
    if script:
        assert w.check_images() == 4 + 1
    w.close()


def test_class_filter_narrows_the_list(browser, site):
    _, base = site
    w = Watched(browser)
    page = w.page
    page.goto(base + "models/vgg16-a1b2c3/classes.html")
    visible = "#class-list > li:visible"
    assert page.locator(visible).count() == 1000
    page.fill("#class-filter", "gold")
    assert page.locator(visible).count() == 1
    assert "goldfish" in page.locator(visible).inner_text()
    assert page.inner_text("#class-count") == "1 of 1000 classes"
    page.fill("#class-filter", "")
    page.type("#class-filter", "number 99")          # as typed, key by key
    assert 1 < page.locator(visible).count() < 20
    page.fill("#class-filter", "script")              # the hostile name is data, not code
    assert page.locator(visible).count() == 1
    w.check_images()
    page.fill("#class-filter", "")
    w.shot("classes", full_page=False)
    w.close()


def test_results_page(browser, site):
    _, base = site
    w = Watched(browser)
    w.page.goto(base + "models/vgg16-a1b2c3/results.html")
    assert w.check_images() == 7
    assert w.page.locator("#channel-table figure").count() == 17
    assert w.page.locator("#class-table figure").count() == 34
    w.shot("results")
    w.close()


def test_class_list_without_javascript(browser, site):
    _, base = site
    w = Watched(browser, java_script_enabled=False)
    w.page.goto(base + "models/vgg16-a1b2c3/classes.html")
    assert w.page.locator("#class-list > li:visible").count() == 1000
    assert not w.page.locator("#class-filter").is_visible()
    w.close()


def test_site_works_from_file_urls(browser, site):
    folder, _ = site
    w = Watched(browser)
    # Each page's images must load before the next click: leaving a page aborts the
    # requests still in flight, which would read as failures of the site.
    w.page.goto((folder / "index.html").as_uri())
    assert w.check_images() >= 8
    w.page.click("text=vgg16 >> nth=0")
    assert w.check_images() > 10
    w.page.click(".layer-head a:text-is('features.0')")
    assert w.check_images() > 0
    w.page.click(".grid a.tile >> nth=0")
    assert w.page.url.endswith("/layers/features.0/0.html")
    assert w.check_images() > 0
    w.close()


@pytest.fixture(scope="module")
def full_site(tmp_path_factory):
    """A site from a synthetic cache the size of a full VGG16 atlas (5,224 units)."""
    yield from _served(tmp_path_factory.mktemp("full"), make_full_vgg16)


def first_view_bytes(browser, url: str) -> dict:
    """Bytes a first visit transfers: the HTML and everything the browser fetches until
    the network is idle, with no scrolling (lazy thumbnails below the fold stay unloaded)."""
    w = Watched(browser)
    page = w.page
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    sizes = page.evaluate("""() => {
        const nav = performance.getEntriesByType('navigation')[0];
        const res = performance.getEntriesByType('resource');
        const images = res.filter(r => r.initiatorType === 'img');
        return {html: nav.transferSize, images: images.reduce((a, r) => a + r.transferSize, 0),
                other: res.filter(r => r.initiatorType !== 'img').reduce((a, r) => a + r.transferSize, 0),
                image_count: images.length,
                shown: document.querySelectorAll('img').length};
    }""")
    w.close()
    return {**sizes, "total": sizes["html"] + sizes["images"] + sizes["other"]}


def test_first_view_of_a_full_model_stays_light(browser, full_site):
    """The 512-channel layer page and the 1,000-class index of a full VGG16 atlas."""
    _, base = full_site
    model = base + "models/vgg16-f0f1f2/"
    measured = {name: first_view_bytes(browser, model + path)
                for name, path in (("layer features.28 (512 channels)", "layers/features.28/index.html"),
                                   ("class index (1000 classes)", "classes.html"))}
    OUTPUT.mkdir(exist_ok=True)
    (OUTPUT / "first-view-bytes.json").write_text(json.dumps(measured, indent=1))
    for name, sizes in measured.items():
        print(f"first view of {name}: {sizes}")
        assert sizes["shown"] >= 512 and 0 < sizes["image_count"] < sizes["shown"] / 2, sizes   # lazy
        assert sizes["total"] < FIRST_VIEW_LIMIT, (name, sizes)


# ----------------------------------------------------------------------------- the activation atlas

def make_atlas_cache(root):
    """A real build of a tiny named model with an activation atlas of two grid levels, and a
    dictionary of the same layer (its cells name their features)."""
    from click.testing import CliRunner

    from atlas.cli import main
    from test_activation_atlas import photo_folder

    photos = photo_folder(root.parent / "atlas-photos", 30)
    result = CliRunner().invoke(main, [
        "build", "tests.tinynet:tiny_vgg_named", "--weights", "random", "--layers", "features.5", "--channels", "4",
        "--classes", "0-3", "--size", "32", "--steps", "3", "--precision", "fp32", "--activation-atlas", str(photos),
        "--atlas-positions", "40", "--atlas-layout", "pca", "--atlas-icon-steps", "4", "--workers", "0",
        "--features", str(photos), "--dictionary-size", "32", "--dictionary-k", "4", "--feature-pictures", "2",
        "--cache-dir", str(root), "--no-site", "--no-connections"])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def atlas_site(tmp_path_factory):
    yield from _served(tmp_path_factory.mktemp("atlas"), make_atlas_cache)


def test_activation_atlas_zooms_labels_filters_and_links(browser, atlas_site):
    folder, base = atlas_site
    model = next((folder / "models").iterdir()).name
    url = f"{base}models/{model}/layers/features.5/atlas.html"
    w = Watched(browser)
    page = w.page
    page.goto(url)
    assert w.check_images() > 5                                        # the coarse grid's icons decode
    assert page.inner_text("#atlas-level").startswith("grid 10×10")
    assert page.locator('.atlas-level[data-level="0"] .atlas-label').count() > 5   # top-class labels
    first = page.locator('.atlas-level[data-level="0"] .atlas-cell').first
    first.hover()
    assert "average of" in page.inner_text("#atlas-tip") and page.locator("#atlas-tip ol li").count() >= 1
    first.click()
    assert "Strongest channels" in page.inner_text("#atlas-detail")
    assert page.locator("#atlas-detail .atlas-photos img").count() >= 1
    page.click('button[data-zoom="in"]')
    assert page.inner_text("#atlas-level").startswith("grid 20×20")   # the finer grid as you zoom in
    assert page.locator('.atlas-level[data-level="1"]').is_visible()
    page.wait_for_function("location.hash.includes('z=2.000')", timeout=5000)
    name = page.evaluate("JSON.parse(document.getElementById('atlas-data').textContent).names['1']")
    page.fill("#atlas-class", f"{name} #1")
    page.wait_for_function("location.hash.includes('c=1')", timeout=5000)
    opacities = page.evaluate("""Array.from(document.querySelectorAll('.atlas-level[data-level="1"] .atlas-cell'))
                                 .map(e => parseFloat(e.style.opacity))""")
    assert min(opacities) < 0.5 < max(opacities)                     # faded by attribution to class 1
    page.select_option("#atlas-label-by", "feature")                  # cells named by their strongest feature
    page.wait_for_function("location.hash.includes('l=feature')", timeout=5000)
    labels = page.eval_on_selector_all('.atlas-level[data-level="1"] .atlas-label', "els => els.map(e => e.textContent)")
    assert labels and all(label.startswith("feature ") for label in labels)
    inside = page.evaluate("""() => {   // a cell of the zoomed grid that lies in view
        const box = document.getElementById('atlas').getBoundingClientRect();
        return Array.from(document.querySelectorAll('.atlas-level[data-level="1"] .atlas-cell')).findIndex(e => {
            const r = e.getBoundingClientRect(), x = r.left + r.width / 2, y = r.top + r.height / 2;
            return x > box.left && x < box.right && y > box.top && y < box.bottom; }); }""")
    assert inside >= 0
    page.locator('.atlas-level[data-level="1"] .atlas-cell').nth(inside).click()
    assert "Dictionary features its activations use most" in page.inner_text("#atlas-detail")
    shared = page.evaluate("location.href")
    w.shot("atlas-zoomed", full_page=False)
    w.close()

    again = Watched(browser)                                           # the shared link opens that view
    again.page.goto(shared)
    assert again.page.inner_text("#atlas-level").startswith("grid 20×20")
    assert again.page.input_value("#atlas-class") == f"{name} #1"
    assert again.page.input_value("#atlas-label-by") == "feature"
    assert again.page.locator('.atlas-level[data-level="1"] .atlas-label').first.inner_text().startswith("feature ")
    again.close()
