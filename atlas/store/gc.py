"""`atlas gc`: remove cache files that nothing references, leaving running builds alone.

What it collects (the layout is described in `atlas.cache` and `atlas.examples`):

- orphan images: `entries/ab/<key>.<nonce>.<i>.png` that the entry's metadata
  does not name: a build killed between an image and its metadata, or the
  loser of two builds racing on one key (the last metadata written wins);
- temp files `.<name>.<hex>.tmp` anywhere in the cache: writes cut short;
- dataset-example crops no stored examples result names (a result redone).

Only files older than `min_age` go: a running build writes an entry's images
moments before its metadata, so a young unreferenced image may be about to be
named, and a young temp file about to be renamed. A key whose metadata cannot
be read keeps its images (gc never guesses); the next build of that unit
replaces the metadata, and a later gc collects what it no longer names.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .examples import named_crops
from .files import is_temp

DEFAULT_MIN_AGE = 3600.0   # seconds; far longer than any gap between an entry's images and its metadata


@dataclass
class GcReport:
    removed: dict[str, list[tuple[Path, int]]] = field(
        default_factory=lambda: {"orphan images": [], "temp files": [], "example crops": []})
    kept_young: int = 0        # unreferenced, but young enough to belong to a running build
    kept_unreadable: int = 0   # images of keys whose metadata could not be read
    dry_run: bool = False

    @property
    def files(self) -> int:
        return sum(len(found) for found in self.removed.values())

    @property
    def freed(self) -> int:
        return sum(size for found in self.removed.values() for _, size in found)


def collect(root: Path, min_age: float = DEFAULT_MIN_AGE, dry_run: bool = False) -> GcReport:
    """Remove (or with `dry_run` only list) unreferenced cache files older than `min_age` s."""
    root = Path(root)
    report = GcReport(dry_run=dry_run)
    cutoff = time.time() - min_age

    def take(kind: str, path: Path) -> None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return                      # removed meanwhile (a rename into place, another gc)
        if stat.st_mtime > cutoff:
            report.kept_young += 1
            return
        if not dry_run:
            try:
                path.unlink()
            except FileNotFoundError:
                return
        report.removed[kind].append((path, stat.st_size))

    for folder in sorted((root / "entries").glob("*")):
        if folder.is_dir():
            _entries_folder(folder, take, report)
    for path in _temp_files(root):
        take("temp files", path)
    for path in _unreferenced_crops(root):
        take("example crops", path)
    return report


def _entries_folder(folder: Path, take, report: GcReport) -> None:
    """Orphan images of one `entries/ab` folder. The metadata is read after the folder
    is listed, so an entry that lands meanwhile names its images before they are judged."""
    images: dict[str, list[Path]] = {}
    for path in folder.iterdir():
        if path.suffix == ".png" and not is_temp(path.name):
            images.setdefault(path.name.split(".")[0], []).append(path)
    for key, paths in sorted(images.items()):
        named = _named_images(folder / f"{key}.json")
        if named is None:
            report.kept_unreadable += len(paths)
            continue
        for path in sorted(paths):
            if path.name not in named:
                take("orphan images", path)


def _named_images(meta_path: Path) -> set[str] | None:
    """The image files an entry's metadata names; empty when there is no metadata, None
    when it exists but cannot be read."""
    try:
        meta = json.loads(meta_path.read_bytes())
        return {str(record["file"]) for record in meta["images"]}
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _temp_files(root: Path):
    for folder, _, names in os.walk(root):
        for name in names:
            if is_temp(name):
                yield Path(folder) / name


def _unreferenced_crops(root: Path):
    """Crops under examples/ that no readable result names. Nothing is collected when
    any result cannot be read: its crops cannot be told apart from garbage."""
    examples = root / "examples"
    if not examples.is_dir():
        return
    named = named_crops(root)
    if named is None:
        return
    for folder, _, names in os.walk(examples):
        for name in names:
            path = Path(folder) / name
            if path.suffix == ".jpg" and not is_temp(name) and path.resolve() not in named:
                yield path
