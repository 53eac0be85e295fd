"""Files that appear whole or not at all, and the one loop that reads a folder of records.

Every file of the cache is written under a temporary name and renamed into place,
so a build killed at any moment leaves the old file or the new one, never half.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
import warnings
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from ..core.errors import AtlasError

T = TypeVar("T")
# What a torn, foreign or half-written record raises when read.
UNREADABLE = (OSError, ValueError, KeyError, TypeError, IndexError)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so readers see the old file or the new one, never half."""
    try:
        replace_file(path, data)
    except OSError as err:
        raise AtlasError(f"cannot write {path}: {err.strerror or err}") from err


def replace_file(path: Path, data: bytes, fsync: bool = True) -> None:
    """`atomic_write` raising OSError. `fsync=False` for files that can be made again
    (site images): it skips the flush to disk that costs milliseconds a file."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def temp_path(path: Path) -> Path:
    """The temporary name a file is written under before it is renamed to `path`:
    hidden, unique, and recognizable by `is_temp` (what `atlas gc` collects)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def is_temp(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def store_by_content(folder: Path, data: bytes, suffix: str = ".jpg", fsync: bool = True) -> str:
    """Store `data` once under `folder`, named by its content's hash; returns the name.
    The same bytes recur (a crop shown by many units) and a hash name is right wherever it
    exists. `fsync=False` for many small files a later run makes again anyway."""
    name = f"{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    target = Path(folder) / name
    if not target.exists():
        try:
            replace_file(target, data, fsync=fsync)
        except OSError as err:
            raise AtlasError(f"cannot write {target}: {err.strerror or err}") from err
    return name


def records(folder: Path, pattern: str, read: Callable[[Path], T | None], *,
            warning: type[Warning] | None = None, what: str = "record") -> Iterator[tuple[Path, T]]:
    """(path, record) for every file of `folder` matching `pattern`, in path order.

    A file removed while we look is skipped; one that `read` cannot parse (it raises
    one of UNREADABLE) is skipped, with a `warning` naming it when one is given; a
    `read` that returns None skips the file too (it has said why itself)."""
    for path in sorted(Path(folder).glob(pattern)):
        try:
            record = read(path)
        except FileNotFoundError:
            continue
        except UNREADABLE as err:
            if warning is not None:
                warnings.warn(f"unreadable {what} {path.name} ({err or type(err).__name__}); skipped",
                              warning, stacklevel=3)
            continue
        if record is not None:
            yield path, record


def check_writable(path: Path, what: str) -> None:
    """Fail before any rendering, not after hours of it."""
    if path.exists() and not path.is_dir():
        raise AtlasError(f"{what} {path} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        raise AtlasError(f"{what} {path} is not writable: {err.strerror or err}") from None
