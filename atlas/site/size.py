"""What a written site weighs, by kind of file, against a publishing budget.

GitHub Pages refuses a published site over 1 GB, so `atlas build` and `atlas
render` end by measuring the folder they wrote and warn, with the fix, before
a push fails. Sizes are bytes of file content (what a host stores and serves),
in decimal units as GitHub states its limit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..core.text import format_bytes

DEFAULT_BUDGET = 1_000_000_000   # GitHub Pages: "published sites may be no larger than 1 GB"


@dataclass(frozen=True)
class SiteSize:
    full: int = 0          # images/full: the unit pages' images
    thumbs: int = 0        # images/thumb: grid thumbnails
    examples: int = 0      # crops of real photos: dataset examples, atlas cells, dictionary features
    pages: int = 0         # *.html
    other: int = 0         # style sheet, script, markers
    files: int = 0

    @property
    def total(self) -> int:
        return self.full + self.thumbs + self.examples + self.pages + self.other

    def summary(self) -> str:
        parts = [("full images", self.full), ("thumbnails", self.thumbs), ("examples", self.examples),
                 ("pages", self.pages), ("other", self.other)]
        return (f"{format_bytes(self.total)} in {self.files:,} files: "
                + ", ".join(f"{name} {format_bytes(size)}" for name, size in parts))

    def over(self, budget: int = DEFAULT_BUDGET) -> str | None:
        """Why the site will not publish within `budget` bytes and what to do, or None."""
        if self.total <= budget:
            return None
        return (f"the site is {format_bytes(self.total)}, over the {format_bytes(budget)} budget "
                f"(GitHub Pages refuses sites over 1 GB). Publish fewer units: render the site "
                f"from a cache holding only what you want shown (fewer layers or classes, no "
                f"--negative or --diversity renders, one model per site), or, if your host "
                f"allows more, raise the budget with --site-budget")


def measure(out: Path) -> SiteSize:
    """Add up the files of the site folder `out` by kind (a `.git` inside is not the site)."""
    out = Path(out)
    sums = {"full": 0, "thumbs": 0, "examples": 0, "pages": 0, "other": 0}
    files = 0
    folders = {out / "images" / "full": "full", out / "images" / "thumb": "thumbs",
               **{out / "images" / name: "examples" for name in ("examples", "atlas", "dictionary")}}
    for folder, dirs, names in os.walk(out):
        dirs[:] = [d for d in dirs if d != ".git"]
        here = Path(folder)
        kind = next((k for f, k in folders.items() if here == f or here.is_relative_to(f)), None)
        for name in names:
            try:
                size = (here / name).stat().st_size
            except FileNotFoundError:
                continue
            files += 1
            sums[kind or ("pages" if name.endswith(".html") else "other")] += size
    return SiteSize(**sums, files=files)


def parse_budget(text: str) -> int:
    """'1GB', '500 MB', '250M', '2e9' -> bytes (decimal units)."""
    value = str(text).strip().upper().replace(" ", "").removesuffix("B")
    scale = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}.get(value[-1:], 1)
    if scale != 1:
        value = value[:-1]
    try:
        budget = float(value) * scale
    except ValueError:
        raise ValueError(f"not a size: {text!r} (try 1GB, 500MB)") from None
    if budget <= 0:
        raise ValueError(f"the budget must be positive, not {text!r}")
    return int(budget)
