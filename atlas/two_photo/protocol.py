"""The two-photo test as pure functions over rankings and embeddings (no model, no photos).

Why pure: the protocol decides what a score means, so it must be testable on
synthetic rankings and embeddings where the right answer is known (a reference at
the strong queries scores 1, at the weak ones 0, a random one about 0.5), and the
same code must score renders made on another machine from saved arrays.

Per unit, the photos ranked by the unit's objective, most exciting first:

    exemplars  ranks 1-9
    strong     ranks 10-29 (20 queries)
    weak       the 20 lowest ranks (the weakest photo first)
    pairs      strong query i with weak query i: rank 10 with the weakest photo,
               rank 11 with the second weakest, ... rank 29 with the 20th weakest

A reference picks the query whose embedding is closer (cosine similarity; a
reference of several images votes with its mean similarity); a pick is correct
when it is the strong query, and an exact tie counts half, so a reference that sees
no difference scores exactly 0.5, deterministically. A unit's score is the share
of correct picks over its pairs; chance is 0.5.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

EXEMPLARS = 9
STRONG = (9, 29)      # 0-based ranks: the 10th to the 29th most exciting photo
WEAK = 20             # the 20 least exciting photos
SPACES = ("logits", "penultimate", "both")


@dataclass(frozen=True)
class Split:
    """One unit's photos by rank: exemplars, and the strong and weak queries in pair order."""
    exemplars: np.ndarray   # [9] photo ids, the most exciting first
    strong: np.ndarray      # [20] ranks 10..29
    weak: np.ndarray        # [20] the weakest first: pair i is (strong[i], weak[i])


def split_ranking(values: np.ndarray) -> Split:
    """Photos by one unit's objective `values` [N] -> exemplars and paired queries.

    The order is a stable sort, so equal activations keep the folder's order (the
    same photos on every machine)."""
    n = len(values)
    if n < STRONG[1] + WEAK:
        raise ValueError(f"need at least {STRONG[1] + WEAK} photos, got {n}")
    order = np.argsort(-np.asarray(values, dtype=np.float64), kind="stable")
    return Split(order[:EXEMPLARS], order[STRONG[0]:STRONG[1]], order[::-1][:WEAK])


DEAD_BAND = 1e-6   # a unit whose every photo's value lies within this of the others is dead


def live_units(values: np.ndarray, band: float = DEAD_BAND) -> np.ndarray:
    """[U] which columns of `values` [N photos, U units] are alive: a dead unit's photos all
    score alike, so its ranking is the folder's order, and it would count in a benchmark as
    a unit whose picture predicts nothing (issue 35: dead units stay out of the averages)."""
    values = np.asarray(values, dtype=np.float64)
    return (np.nanmax(values, 0) - np.nanmin(values, 0)) > band


def unit_rows(x: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """Rows centred on `center` (when given) and scaled to unit length, so a dot product is
    a cosine similarity; zero rows stay zero (similar to nothing) rather than NaN."""
    x = np.asarray(x, dtype=np.float64)
    if center is not None:
        x = x - center
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def reference_similarity(refs: np.ndarray, queries: np.ndarray, rule: str = "mean") -> np.ndarray:
    """[Q]: how close each query is to a reference of one or more images [R, D] (unit rows):
    the mean (or the max) over the reference's images of the cosine similarity. The mean
    lets every image of a reference vote, so one lucky image cannot carry it."""
    sims = np.atleast_2d(refs) @ np.atleast_2d(queries).T      # [R, Q]
    return sims.mean(0) if rule == "mean" else sims.max(0)


def picks(strong_sim: np.ndarray, weak_sim: np.ndarray) -> np.ndarray:
    """Per pair: 1 when the reference sides with the strong query, 0 with the weak one, 0.5 on an exact tie."""
    return np.where(strong_sim > weak_sim, 1.0, np.where(strong_sim < weak_sim, 0.0, 0.5))


def pair_score(refs: np.ndarray, strong: np.ndarray, weak: np.ndarray, rule: str = "mean") -> float:
    """Share of correct picks over the pairs (strong[i], weak[i]): refs [R, D], queries [P, D], unit rows."""
    return float(picks(reference_similarity(refs, strong, rule), reference_similarity(refs, weak, rule)).mean())


def random_photos(split: Split, count: int, draws: int, *, seed: int, key: str) -> np.ndarray:
    """`draws` photo ids drawn uniformly (with replacement) from the `count` photos, the
    unit's exemplars and queries excluded; seeded by the run's seed and the unit's `key`,
    so a rerun draws the same photos whatever else it scores."""
    taken = set(np.concatenate([split.exemplars, split.strong, split.weak]).tolist())
    pool = np.array([i for i in range(count) if i not in taken])
    rng = np.random.default_rng(zlib.crc32(f"{seed}|{key}".encode()))
    return pool[rng.integers(0, len(pool), draws)]


def random_score(embedding: np.ndarray, split: Split, draws: int, *, seed: int, key: str) -> float:
    """The random-photo reference: the mean over `draws` single-photo references. It must
    come out near 0.5: it checks that the test has no bias of its own."""
    ids = random_photos(split, len(embedding), draws, seed=seed, key=key)
    strong, weak = embedding[split.strong], embedding[split.weak]
    return float(np.mean([pair_score(embedding[i][None], strong, weak) for i in ids]))


def spaces(logits: np.ndarray, penultimate: np.ndarray, center: Mapping | None = None) -> dict[str, np.ndarray]:
    """A judge's two embeddings, and both together, as unit rows, each centred on `center`
    (per space; the photos' mean, so a look every photo shares drops out of the similarity).
    `both` is the two unit vectors concatenated and divided by sqrt(2): its similarity is
    the mean of the two cosine similarities."""
    center = center or {"logits": None, "penultimate": None}
    lo, pe = unit_rows(logits, center["logits"]), unit_rows(penultimate, center["penultimate"])
    return {"logits": lo, "penultimate": pe, "both": np.concatenate([lo, pe], -1) / math.sqrt(2)}


def score_channels(embedded: Mapping[str, np.ndarray], splits: Sequence[Split],
                   renders: Mapping[str, np.ndarray] | None = None, *, seed: int, keys: Sequence[str],
                   draws: int) -> dict:
    """Per space of `embedded` (photo embeddings, unit rows), per unit: the exemplars' score,
    the random photo's and, when `renders` [U, copies, D] per space are given, the
    visualization's (all its copies) and its first image's alone."""
    out = {}
    for space, photos in embedded.items():
        rows: dict[str, list[float]] = {"exemplars": [], "random": []}
        if renders is not None:
            rows["visualization"], rows["first_image"] = [], []
        for n, (split, key) in enumerate(zip(splits, keys)):
            strong, weak = photos[split.strong], photos[split.weak]
            rows["exemplars"].append(pair_score(photos[split.exemplars], strong, weak))
            rows["random"].append(random_score(photos, split, draws, seed=seed, key=key))
            if renders is not None:
                rows["visualization"].append(pair_score(renders[space][n], strong, weak))
                rows["first_image"].append(pair_score(renders[space][n][:1], strong, weak))
        out[space] = rows
    return out


def spread(values) -> tuple[float, float]:
    """(mean, half of max - min) over seeds: how the benchmarks report a number and its noise."""
    values = list(values)
    return float(np.mean(values)), float((max(values) - min(values)) / 2)


def standard_error(values) -> float:
    """Standard error of the mean (0 for fewer than two values)."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def pick_channels(channels: int, count: int) -> list[int]:
    """`count` channel indices spread evenly over a layer of `channels`: deterministic, no
    seed, so two runs (or two machines) test the same channels."""
    if count >= channels:
        return list(range(channels))
    return sorted({int(round(x)) for x in np.linspace(0, channels - 1, count + 2)[1:-1]})
