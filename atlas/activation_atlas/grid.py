"""From sampled activation vectors to the cells of an activation atlas: layout, grids, directions.

    layout     2-D positions of the samples (UMAP, or PCA), clipped at their 1st and
               99th percentiles plus a 10 % margin and scaled to [0, 1]
    bin        each sample's cell in an N x N grid; a cell with at least `min_count`
               samples is kept, its vector the mean of its samples' vectors, its
               attribution the mean of theirs
    direction  what a cell's icon optimizes: the mean vector, whitened by the layer's
               inverse (uncentred) covariance on deeper layers, as unit vector

Pure numpy (the layout imports umap-learn when asked for UMAP), so each step is
testable against a hand computation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from ..core.errors import AtlasError

LAYOUTS = ("umap", "pca")
MARGIN = 0.1
ROUND = 6   # decimals of a stored direction: the same mean always hashes to the same icon key


@dataclass(frozen=True)
class Layout:
    coords: np.ndarray       # [n, 2] in [0, 1]
    method: str              # what made it ("umap", "pca", or "pca (UMAP failed: ...)")


def normalize(raw: np.ndarray) -> np.ndarray:
    """[n, 2] raw layout -> [0, 1]: clipped at the 1st/99th percentiles plus a 10 % margin."""
    low, high = np.percentile(raw, 1, axis=0), np.percentile(raw, 99, axis=0)
    span = np.where(high > low, high - low, 1.0)
    low, high = low - MARGIN * span, high + MARGIN * span
    return np.clip((raw - low) / (high - low), 0.0, 1.0)


def pca_layout(vectors: np.ndarray) -> np.ndarray:
    centred = vectors.astype(np.float64) - vectors.mean(0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    raw = centred @ axes[:2].T
    return raw if raw.shape[1] == 2 else np.pad(raw, ((0, 0), (0, 2 - raw.shape[1])))


def umap_layout(vectors: np.ndarray, neighbours: int, metric: str, seed: int) -> np.ndarray:
    try:
        import umap
    except ImportError:
        raise AtlasError("the activation atlas lays samples out with umap-learn: pip install 'atlas[layout]' "
                         "(or choose --atlas-layout pca)") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # umap's notices about seeds and parallelism
        reducer = umap.UMAP(n_components=2, n_neighbors=min(neighbours, len(vectors) - 1), min_dist=0.05,
                            metric=metric, random_state=seed, init="spectral")
        return reducer.fit_transform(vectors.astype(np.float32))


def layout(vectors: np.ndarray, method: str = "umap", early: bool = False, seed: int = 0) -> Layout:
    """2-D positions of the samples. UMAP as the reference: 50 neighbours, cosine metric;
    200 neighbours and euclidean for the earliest layers. Where UMAP cannot run on these
    samples (too few, degenerate), PCA stands in and the method says why."""
    if method not in LAYOUTS:
        raise AtlasError(f"unknown atlas layout {method!r}; choose from {', '.join(LAYOUTS)}")
    if method == "pca":
        return Layout(normalize(pca_layout(vectors)), "pca")
    if len(vectors) < 16:
        return Layout(normalize(pca_layout(vectors)), f"pca (UMAP needs at least 16 samples, got {len(vectors)})")
    try:
        raw = umap_layout(vectors, 200 if early else 50, "euclidean" if early else "cosine", seed)
    except AtlasError:
        raise
    except Exception as err:   # numba and umap raise many kinds; the page says what happened
        reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
        return Layout(normalize(pca_layout(vectors)), f"pca (UMAP failed: {reason})")
    if not np.isfinite(raw).all():
        return Layout(normalize(pca_layout(vectors)), "pca (UMAP gave non-finite positions)")
    return Layout(normalize(raw), "umap")


@dataclass(frozen=True)
class Cell:
    row: int
    column: int
    count: int
    members: np.ndarray      # indices of its samples
    mean: np.ndarray         # [C] mean activation vector
    attribution: np.ndarray  # [classes] mean attribution (empty without attributions)


def cells_of(coords: np.ndarray, size: int) -> np.ndarray:
    """[n, 2] (row, column) of each sample in a size x size grid over [0, 1]^2 (y down, x right)."""
    index = np.floor(coords[:, ::-1] * size).astype(np.int64)   # coords are (x, y)
    return np.minimum(index, size - 1)


def bin_samples(coords: np.ndarray, vectors: np.ndarray, attributions: np.ndarray | None, *, size: int,
                min_count: int) -> list[Cell]:
    """The kept cells of one grid, in row-major order."""
    where = cells_of(coords, size)
    flat = where[:, 0] * size + where[:, 1]
    cells = []
    for cell in np.unique(flat):
        members = np.flatnonzero(flat == cell)
        if len(members) < min_count:
            continue
        attribution = (attributions[members].astype(np.float64).mean(0) if attributions is not None
                       and len(attributions) else np.zeros(0))
        cells.append(Cell(int(cell // size), int(cell % size), len(members), members,
                          vectors[members].astype(np.float64).mean(0), attribution))
    return cells


def default_levels(samples: int, min_count: int) -> tuple[int, ...]:
    """Grid sides, coarse to fine: the finest of 10, 20, 40, 80, 160, 320 that still
    averages `min_count` samples over the cells half its grid would fill, and two coarser."""
    sides = (10, 20, 40, 80, 160, 320)
    finest = max([s for s in sides if samples / (s * s / 2) >= min_count] or [sides[0]])
    chosen = [s for s in sides if s <= finest][-3:]
    return tuple(chosen)


def whitening(vectors: np.ndarray) -> np.ndarray:
    """The inverse of the vectors' uncentred covariance (ridge: 1e-3 of its mean eigenvalue)."""
    v = vectors.astype(np.float64)
    covariance = v.T @ v / max(len(v), 1)
    ridge = 1e-3 * np.trace(covariance) / max(len(covariance), 1) + 1e-12
    return np.linalg.inv(covariance + ridge * np.eye(len(covariance)))


def direction(mean: np.ndarray, whiten: np.ndarray | None = None) -> tuple[float, ...]:
    """A cell's icon direction: its mean (whitened where asked), unit length, rounded."""
    v = mean if whiten is None else whiten @ mean
    norm = np.linalg.norm(v)
    v = v / norm if norm > 0 else v
    return tuple(round(float(x), ROUND) for x in v)


def top(values: np.ndarray, count: int) -> list[tuple[int, float]]:
    """The `count` largest entries as (index, value), largest first."""
    if not len(values):
        return []
    order = np.argsort(-values, kind="stable")[:count]
    return [(int(i), float(values[i])) for i in order]
