"""One layer's dictionary from its sampled vectors: held-out split, training per seed, measures.

    split      a seeded share of the photos held out (`collect.held_out`): their vectors
               measure, never train
    train      one dictionary per seed, each stored when done and checkpointed after every
               epoch, so a killed build resumes at its last epoch and a finished seed is
               never trained again
    measure    the first seed's quality on the held-out vectors (R², L0, dead share, each
               feature's firing frequency) and, with two seeds, their stability

Too few training vectors for the dictionary's size is the user's to fix, said in one line.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch

from ..core.errors import AtlasError
from ..store import dictionary as stored
from .collect import held_out
from .metrics import Quality, quality, stability
from .sae import DictionaryShape, SparseDictionary
from .train import Training, checkpoint_epoch, fit

Progress = Callable[[int, str], ContextManager[Callable[[int], None]]]

# A dictionary needs several vectors per feature to learn it from, or its features memorize
# vectors (and the held-out R² says so). Below this, the build stops and names the fix.
MIN_VECTORS_PER_FEATURE = 8


def silent(count: int, label: str):
    return contextlib.nullcontext(lambda n: None)


@dataclass(frozen=True)
class Learned:
    dictionary: SparseDictionary          # the first seed's, the one the site shows
    quality: Quality                      # on the held-out vectors
    frequency: np.ndarray                 # [D] each feature's firing share on them
    stability: float | None               # matched cosine of the seeds' atoms (None: one seed)
    train_vectors: int


def too_few(layer: str, vectors: int, size: int, option: str = "--features") -> str | None:
    """The one line that stops a build whose photos give too few vectors for `size` features."""
    need = MIN_VECTORS_PER_FEATURE * size
    if vectors >= need:
        return None
    return (f"{option}: {layer} gives {vectors:,} training vectors, too few for {size:,} features "
            f"(at least {need:,}): bring more photos, or a smaller --dictionary-size")


def learn(vectors: np.ndarray, images: np.ndarray, shape: DictionaryShape, training: Training, *,
          layer: str, holdout: float, seeds: int, device: torch.device, root: Path, key: str,
          progress: Progress = silent) -> Learned:
    """The layer's dictionary for `vectors` [N, C] (with the photo of each, `images` [N])."""
    test = held_out(images, holdout, training.seed)
    train = torch.from_numpy(vectors[~test])
    problem = too_few(layer, len(train), shape.size)
    if problem:
        raise AtlasError(problem)
    trained = [_trained(train, shape, Training(**{**training.as_dict(), "seed": training.seed + s}),
                        device=device, root=root, key=key, layer=layer, progress=progress) for s in range(seeds)]
    found, frequency = quality(trained[0].to(device), torch.from_numpy(vectors[test]), device)
    agreement = stability(trained[0].atoms.detach().cpu(), trained[1].atoms.detach().cpu()) if seeds > 1 else None
    return Learned(trained[0].cpu(), found, frequency, agreement, len(train))


def _trained(vectors: torch.Tensor, shape: DictionaryShape, training: Training, *, device: torch.device,
             root: Path, key: str, layer: str, progress: Progress) -> SparseDictionary:
    """Seed `training.seed`'s dictionary: stored, or trained now (from its checkpoint, if any)."""
    found = stored.load_trained(root, key, training.seed)
    if found is not None:
        return SparseDictionary.from_weights(shape, found[1])
    resume = stored.load_checkpoint(root, key, training.seed)
    with progress(training.epochs, f"dictionary of {layer}, seed {training.seed}") as advance:
        if resume is not None:
            advance(checkpoint_epoch(resume))
        model = fit(vectors, shape, training, device=device, resume=resume,
                    checkpoint=lambda data: stored.store_checkpoint(root, key, training.seed, data),
                    on_epoch=lambda epoch, loss: advance(1))
    stored.store_trained(root, key, training.seed, model.weights(), meta={"shape": shape.as_dict(),
                                                                      "training": training.as_dict()})
    return model
