"""What a layer's stored dictionary says of other vectors of that layer: which features they
use most. The activation atlas labels its cells by it (each cell's strongest features).

    stored_dictionary  the dictionary the site shows for a layer (the newest record's first
                       seed), loaded from the cache, or None where the layer has none
    sparse_codes       every vector's nonzero codes, kept sparse: [N, k] features and values
    strongest          of a set of those vectors (a cell's members), the features with the
                       largest mean code, largest first
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..store import dictionary as stored
from .sae import DictionaryShape, SparseDictionary

SHOWN = 3          # features named per cell
CHUNK = 4096       # vectors encoded at once: a deep layer's codes [CHUNK, D] stay small


@dataclass(frozen=True)
class StoredDictionary:
    key: str                      # its trained dictionary's key: what labels made from it depend on
    dictionary: SparseDictionary


def stored_dictionary(root: Path, model: str, fingerprint: str, layer: str) -> StoredDictionary | None:
    record = stored.scan(root).get((model, fingerprint, layer))
    if record is None or not record.trained:
        return None
    found = stored.load_trained(root, record.trained, int(record.training.get("seed", 0)))
    if found is None:
        return None
    shape = DictionaryShape(**record.shape)
    return StoredDictionary(record.trained, SparseDictionary.from_weights(shape, found[1]))


@torch.no_grad()
def sparse_codes(dictionary: SparseDictionary, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """([N, k] feature indices, [N, k] codes) of each vector's k largest codes (k: the
    dictionary's), zero codes where it uses fewer."""
    k = dictionary.shape.k
    features, values = np.zeros((len(vectors), k), np.int64), np.zeros((len(vectors), k), np.float32)
    for start in range(0, len(vectors), CHUNK):
        codes = dictionary.encode(torch.from_numpy(np.ascontiguousarray(vectors[start:start + CHUNK], np.float32)))
        top = codes.topk(min(k, codes.shape[1]), dim=1)
        features[start:start + len(codes), :top.indices.shape[1]] = top.indices.numpy()
        values[start:start + len(codes), :top.values.shape[1]] = top.values.clamp(min=0).numpy()
    return features, values


def strongest(codes: tuple[np.ndarray, np.ndarray], members: np.ndarray, size: int,
              count: int = SHOWN) -> list[list]:
    """[[feature, mean code], ...] over the vectors `members` (rows of `codes`), the `count`
    largest mean codes first; features none of them uses are left out."""
    features, values = codes
    if not len(members):
        return []
    means = np.bincount(features[members].ravel(), weights=values[members].ravel(), minlength=size) / len(members)
    order = np.argsort(-means, kind="stable")[:count]
    return [[int(f), round(float(means[f]), 4)] for f in order if means[f] > 0]
