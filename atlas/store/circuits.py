"""Stored connections: the expanded weights of one layer pair per file.

    circuits/<key>.npz     arrays norm, total, heat and a JSON `meta` (model,
                           fingerprint, source, target, why skipped, seconds, size)

They depend on the weights alone, so rendering settings never invalidate them.
`atlas.circuits` computes them; the site reads them back (numpy only, no torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np

from . import arrays as arrays_file
from .files import records

CIRCUITS_VERSION = 1
FOLDER = "circuits"


@dataclass
class Pair:
    """The expanded weights of one (source, target) pair, as cached."""
    source: str
    target: str
    norm: np.ndarray        # [target channels, source channels]: L2 norm of each spatial pattern
    total: np.ndarray       # [target channels, source channels]: its sum (> 0: excites)
    heat: np.ndarray        # [target, source, h, w] the pattern around the centre (h = w = 0 for flat targets)
    skipped: str = ""       # why no weights were computed for this pair (then the arrays are empty)
    seconds: float = 0.0
    size: int = 0           # input side the pair was probed at
    model: str = ""
    fingerprint: str = ""


def pair_key(model: str, fingerprint: str, source: str, target: str, *, settings: dict) -> str:
    """`settings`: what else decides the arrays (the stored window, the probe's smallest map)."""
    return joblib.hash({"model": model, "weights": fingerprint, "source": source, "target": target,
                        "version": CIRCUITS_VERSION, **settings})


def store(root: Path, key: str, pair: Pair) -> None:
    meta = {"model": pair.model, "fingerprint": pair.fingerprint, "source": pair.source, "target": pair.target,
            "skipped": pair.skipped, "seconds": pair.seconds, "size": pair.size, "version": CIRCUITS_VERSION}
    arrays_file.write(Path(root) / FOLDER / f"{key}.npz", {"norm": pair.norm.astype(np.float32),
                                                          "total": pair.total.astype(np.float32),
                                                          "heat": pair.heat.astype(np.float16)}, meta)


def _read(path: Path) -> Pair:
    meta, data = arrays_file.read(path)
    return Pair(meta["source"], meta["target"], data["norm"], data["total"], data["heat"],
                meta.get("skipped", ""), float(meta.get("seconds", 0)), int(meta.get("size", 0)),
                str(meta["model"]), str(meta["fingerprint"]))


def load(root: Path, key: str) -> Pair | None:
    try:
        return _read(Path(root) / FOLDER / f"{key}.npz")
    except (OSError, KeyError, ValueError):
        return None


def scan(root: Path) -> dict[tuple[str, str, str, str], Pair]:
    """Every cached pair: (model, fingerprint, source, target) -> Pair; each file read once."""
    return {(pair.model, pair.fingerprint, pair.source, pair.target): pair
            for _, pair in records(Path(root) / FOLDER, "*.npz", _read)}
