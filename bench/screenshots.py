"""Screenshots of a written site's pages, with each page's broken images and console errors.

    .venv/bin/python bench/screenshots.py site docs/images/demo \
        model=models/efficientnet_lite0-XXXX/index.html unit=models/.../layers/_conv_head/3.html ...

Serves the site folder (`atlas serve`'s server), opens each page in headless Chromium
(Debian's, as the browser test), scrolls it whole so lazy images load, and saves a JPEG
of the window per NAME=PATH (of the element with that id alone for NAME=PATH#ID). Prints per page its images that did not load and its
console errors: a page for the README has none of either.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from atlas.site.server import make_server   # noqa: E402

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def main(site: Path, out: Path, pages: dict[str, str]) -> int:
    from playwright.sync_api import sync_playwright

    server = make_server(site, port=0, quiet=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    out.mkdir(parents=True, exist_ok=True)
    problems = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
        for name, path in pages.items():
            page = browser.new_page(viewport={"width": 1280, "height": 900})   # a page each: its own listeners
            errors: list[str] = []
            page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
            page.goto(base + path, wait_until="load")
            page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            page.wait_for_timeout(400)
            page.evaluate("window.scrollTo(0, 0)")
            broken = page.evaluate("Array.from(document.images).filter(i => i.complete && i.naturalWidth === 0)"
                                   ".map(i => i.getAttribute('src'))")
            target = out / f"{name}.jpg"
            _, _, anchor = path.partition("#")
            shown = page.locator(f"#{anchor}") if anchor else page   # PATH#ID: that element alone
            shown.screenshot(path=str(target), type="jpeg", quality=80)
            print(f"{name}: {path} -> {target}; {len(broken)} broken images, {len(errors)} console errors"
                  + (f": {broken[:3]} {errors[:3]}" if broken or errors else ""))
            problems += len(broken) + len(errors)
            page.close()
        browser.close()
    server.shutdown()
    return 1 if problems else 0


def _page(item: str) -> tuple[str, str]:
    name, sep, path = item.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{item!r} is not NAME=PATH (e.g. unit=models/.../layers/_conv_head/3.html)")
    return name, path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="a written site folder")
    parser.add_argument("out", type=Path, help="the folder for the screenshots (NAME.jpg)")
    parser.add_argument("pages", nargs="+", type=_page, metavar="NAME=PATH", help="a page, relative to the site")
    args = parser.parse_args()
    if not (args.site / "index.html").is_file():
        parser.error(f"{args.site} holds no written site (no index.html)")
    sys.exit(main(args.site, args.out, dict(args.pages)))
