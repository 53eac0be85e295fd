"""The output folder: claim it, write pages into it cheaply, remove what went stale.

A site folder holds a marker file so atlas only ever deletes inside folders it
wrote; a `.git` (a gh-pages worktree used as the site folder) is never touched.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from ..store.files import is_temp
from ..core.errors import AtlasError

MARKER = ".atlas-site"  # proves a folder is ours before we delete stale pages from it
TEMP_GRACE_SECONDS = 600  # a temp file younger than this may belong to a writer still running


def claim(out: Path) -> None:
    """Refuse to write into a non-empty folder that is not a site we wrote before,
    because a rewrite deletes the HTML pages it no longer produces. A `.git` alone
    is fine: a gh-pages worktree checked out as the site folder."""
    if out.exists() and not out.is_dir():
        raise AtlasError(f"{out} is a file; the site needs a folder")
    foreign = out.exists() and any(p.name != ".git" for p in out.iterdir())
    if foreign and not (out / MARKER).exists():
        raise AtlasError(f"{out} is not empty and was not written by atlas; "
                         "choose an empty or new folder for the site")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by atlas; pages here are replaced on every site build\n")


def write_if_changed(target: Path, data: bytes) -> None:
    """Leave unchanged pages alone (a rebuild mostly rewrites identical pages), and
    replace changed ones by a new file: truncating an old file in place makes ext4
    flush it to disk on close, which costs milliseconds per page."""
    try:
        if target.read_bytes() == data:
            return
        target.unlink()
    except FileNotFoundError:
        target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def remove_stale(out: Path, pages: set[Path], images: set[Path]) -> None:
    """Drop pages of units no longer in the cache, unreferenced images, left-over temp
    files, then empty folders; never look inside a `.git` (a gh-pages worktree)."""
    for folder, dirs, files in os.walk(out, topdown=False):
        if ".git" in Path(folder).relative_to(out).parts:
            continue
        here = Path(folder)
        for name in files:
            path = here / name
            stale_page = path.suffix == ".html" and path not in pages
            stale_image = path.is_relative_to(out / "images") and path not in images
            if stale_image and in_flight(path):
                continue  # another site writer's temp file, about to be renamed into place
            if stale_page or stale_image:
                path.unlink(missing_ok=True)
        if here != out and not any(here.iterdir()):
            here.rmdir()


def in_flight(path: Path, grace_seconds: float = TEMP_GRACE_SECONDS) -> bool:
    """A temp file young enough that its writer may still be running."""
    try:
        return is_temp(path.name) and time.time() - path.stat().st_mtime < grace_seconds
    except FileNotFoundError:
        return False
