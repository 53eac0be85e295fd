"""How good a dictionary is, on vectors it was not trained on.

    r2         explained variance: 1 - squared error / squared distance to the vectors' mean
    l0         mean number of non-zero codes per vector
    dead       share of features that never fire on the held-out vectors
    frequency  per feature, the share of vectors it fires on
    stability  two dictionaries' atoms matched one to one (Hungarian matching on cosine
               similarity), the mean cosine of the matched pairs: 1 when two seeds learn
               the same features

Vectors go through in chunks, so memory is one chunk's codes whatever the count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .sae import SparseDictionary

CHUNK = 8192


@dataclass(frozen=True)
class Quality:
    r2: float
    l0: float
    dead: float
    vectors: int

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def quality(model: SparseDictionary, vectors: torch.Tensor, device: torch.device) -> tuple[Quality, np.ndarray]:
    """The dictionary's quality on `vectors` [N, C], and each feature's firing frequency [D]."""
    error = total = active = 0.0
    fired = torch.zeros(model.shape.size, dtype=torch.float64, device=device)
    mean = vectors.float().mean(0).to(device)
    for start in range(0, len(vectors), CHUNK):
        x = vectors[start:start + CHUNK].to(device).float()
        codes = model.encode(x)
        error += float((model.decode(codes) - x).pow(2).sum())
        total += float((x - mean).pow(2).sum())
        nonzero = codes > 0
        active += float(nonzero.sum())
        fired += nonzero.sum(0).double()
    count = max(1, len(vectors))
    frequency = (fired / count).cpu().numpy()
    return Quality(1 - error / max(total, 1e-12), active / count, float((frequency == 0).mean()), len(vectors)), \
        frequency


def stability(first: torch.Tensor, second: torch.Tensor) -> float:
    """Mean cosine of the atoms of two dictionaries [D, C] matched one to one (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    similarity = (F.normalize(first.float(), dim=1) @ F.normalize(second.float(), dim=1).T).cpu().numpy()
    rows, columns = linear_sum_assignment(-similarity)
    return float(similarity[rows, columns].mean())


def matched_cosines(found: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """For each true atom [K, C], the cosine of the found atom [D, C] matched to it (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    similarity = (F.normalize(truth.float(), dim=1) @ F.normalize(found.float(), dim=1).T).cpu().numpy()
    rows, columns = linear_sum_assignment(-similarity)
    out = np.zeros(len(truth))
    out[rows] = similarity[rows, columns]
    return out
