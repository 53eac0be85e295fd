"""Cache keys for records whose layout carries a version number.

A key hashes its parts together with the store's version, so a change of layout
makes every record again. A part named `version` would be overwritten by that
number and never enter the hash: it is refused, and a record's own version goes in
under another name (`record_version`).
"""

from __future__ import annotations

import joblib


def versioned_key(version: int, /, **parts) -> str:
    """A stable hash of `parts` and the store's `version`."""
    if "version" in parts:
        raise ValueError("a key's 'version' is its store's version: name a record's own version otherwise")
    return joblib.hash({**parts, "version": version})
