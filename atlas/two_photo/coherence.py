"""How alike a set of photos looks to a judge: the numbers beside the two-photo test.

The two-photo test asks whether a picture predicts which photo excites a unit; these
ask the question before it, whether the photos that excite a unit look alike at all
(a unit whose top photos share nothing cannot have a picture that predicts them):

    coherence              mean cosine similarity over the pairs of a set of photos
    coherence_with         mean similarity of each reference to each of other photos
    monosemanticity        Pach et al. (2025), "Sparse autoencoders learn monosemantic
                           features in vision-language models": the mean pairwise
                           similarity of all photos, each pair weighted by how much
                           both photos excite the unit

All three are computed from sums of the rows, never from the N x N matrix of
similarities: for unit rows e_i, sum_{i,j} a_i a_j e_i.e_j = |sum_i a_i e_i|^2, so
a layer's thousand channels over a thousand photos cost one [D, C] product. Rows are
scaled to unit length here (`unit_rows`), so raw and centred embeddings both work;
centre them first (as `protocol.spaces` does) when the space has an offset every photo
shares. A zero row is similar to nothing.
"""

from __future__ import annotations

import numpy as np

from .protocol import unit_rows


def coherence(embeddings: np.ndarray) -> float:
    """Mean cosine similarity over the n(n-1)/2 pairs of distinct rows of [N, D]; NaN below two rows."""
    rows = unit_rows(embeddings)
    n = len(rows)
    if n < 2:
        return float("nan")
    total = rows.sum(0)
    return float((total @ total - np.einsum("id,id->", rows, rows)) / (n * (n - 1)))


def coherence_with(refs: np.ndarray, others: np.ndarray) -> float:
    """Mean cosine similarity of each row of `refs` [R, D] to each row of `others` [O, D]
    (every (ref, other) pair once; a row in both sets counts as its own pair)."""
    a, b = unit_rows(np.atleast_2d(refs)), unit_rows(np.atleast_2d(others))
    if not len(a) or not len(b):
        return float("nan")
    return float(a.sum(0) @ b.sum(0) / (len(a) * len(b)))


def monosemanticity(activations: np.ndarray, embeddings: np.ndarray) -> float | np.ndarray:
    """The monosemanticity score of Pach et al. of one unit (`activations` [N]) or of many
    (`activations` [N, C], one column per unit: an array [C]) over N photos with
    `embeddings` [N, D]:

        MS = sum_{i<j} a_i a_j s_ij / sum_{i<j} a_i a_j

    with a each unit's activations min-max normalised to [0, 1] over the photos and s_ij
    the cosine similarity of photos i and j. A unit whose strong photos look alike
    scores near the similarity of alike photos; one that fires on unrelated photos
    near the average similarity. A unit with one activation on every photo weights
    every pair alike (the score is `coherence`); a unit with fewer than two photos
    above its minimum has no weighted pair (NaN)."""
    a = np.asarray(activations, dtype=np.float64)
    single = a.ndim == 1
    a = a[:, None] if single else a
    if len(a) != len(embeddings):
        raise ValueError(f"{len(a)} rows of activations for {len(embeddings)} embeddings")
    low, high = a.min(0), a.max(0)
    width = high - low
    weights = np.where(width > 0, (a - low) / np.where(width > 0, width, 1.0), 1.0)   # [N, C]
    rows = unit_rows(embeddings)                                                     # [N, D]
    norms = np.einsum("id,id->i", rows, rows)              # 1, or 0 for a zero row: s_ii
    summed = rows.T @ weights                              # [D, C]: sum_i a_i e_i per unit
    pairs = np.einsum("dc,dc->c", summed, summed) - (weights ** 2 * norms[:, None]).sum(0)
    weight = weights.sum(0) ** 2 - (weights ** 2).sum(0)   # sum_{i != j} a_i a_j
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = np.where(weight > 1e-12, pairs / np.where(weight > 1e-12, weight, 1.0), np.nan)
    return float(scores[0]) if single else scores
