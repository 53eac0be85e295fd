"""Text for people and for file systems: durations, byte counts, safe file names.

One helper each, shared by the command line and the site, so a duration or a
size reads the same wherever atlas prints it.
"""

from __future__ import annotations

import hashlib
import re


def format_duration(seconds: float) -> str:
    """'42.0 s', '3.5 min', '2 h 5 min'."""
    seconds = float(seconds or 0)
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 120:
        return f"{minutes:.1f} min"
    return f"{int(minutes // 60)} h {int(minutes % 60)} min"


def format_bytes(count: float) -> str:
    """Decimal units, as GitHub states its limits: '812 B', '24.6 kB', '231.4 MB', '1.02 GB'."""
    count = float(count)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(count) >= scale:
            value = count / scale
            return f"{value:.2f} {unit}" if unit == "GB" else f"{value:.1f} {unit}"
    return f"{count:.0f} B"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """'1 layer', '3 layers' ('1 class', '2 classes' with `many`)."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def safe_name(name: str) -> str:
    """A file name for any layer name or slug; names that had to change get a hash
    suffix so two different names never share a file."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip(".") or "_"
    if safe != name:
        safe += "-" + hashlib.sha1(name.encode()).hexdigest()[:8]
    return safe
