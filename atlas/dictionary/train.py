"""Training a sparse dictionary on sampled activation vectors, resumable epoch by epoch.

The vectors are centred on their mean and scaled so their squared norm is 1 on average
(a layer's units carry no meaning in their absolute size), the loss is the squared
reconstruction error there, plus the auxiliary loss that wakes dead features. Each
epoch visits the vectors in an order seeded by (seed, epoch), so a run resumed from a
checkpoint takes the same steps as one never stopped. A checkpoint is written after
every epoch (`checkpoint`: a callable storing bytes atomically); `resume` reads one.
"""

from __future__ import annotations

import io
import math
from dataclasses import asdict, dataclass
from typing import Callable

import torch

from .sae import DictionaryShape, SparseDictionary


@dataclass(frozen=True)
class Training:
    """How a dictionary is trained: part of its cache key."""
    epochs: int = 20
    batch: int = 1024
    lr: float = 1e-3          # Adam; the last fifth of the steps decay it linearly to zero
    aux_k: int = 256          # dead codes the auxiliary loss may use per vector
    aux_weight: float = 1 / 32
    dead_after: int = 50_000  # vectors seen without a code above zero: the feature counts as dead
    seed: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def scale_of(centred: torch.Tensor) -> float:
    """The data's scale: the root of its mean squared norm after centring."""
    return float(centred.float().pow(2).sum(1).mean().sqrt().clamp(min=1e-8))


def new_dictionary(vectors: torch.Tensor, shape: DictionaryShape, seed: int) -> SparseDictionary:
    """A dictionary set up for `vectors` [N, C]: their mean and scale, seeded atoms, and for an
    archetypal one, seeded candidate points among the (normalized) vectors. (The same
    points for every seed left the stability between seeds where it was: 0.360 against
    0.362 at Lite0's `_blocks.10`, BENCHMARKS.)"""
    generator = torch.Generator().manual_seed(seed)
    mean = vectors.float().mean(0)
    scale = scale_of(vectors.float() - mean)
    candidates = None
    if shape.kind == "archetypal":
        picked = torch.randperm(len(vectors), generator=generator)[:shape.candidates]
        candidates = (vectors[picked].float() - mean) / scale
    return SparseDictionary(shape, mean, scale, candidates, generator)


def checkpoint_epoch(data: bytes) -> int:
    """The epochs a checkpoint has finished."""
    return int(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)["epoch"])


def fit(vectors: torch.Tensor, shape: DictionaryShape, training: Training, *, device: torch.device,
        checkpoint: Callable[[bytes], None] | None = None, resume: bytes | None = None,
        on_epoch: Callable[[int, float], None] = lambda epoch, loss: None) -> SparseDictionary:
    """A dictionary of `vectors` [N, C] (any float dtype, on the CPU), trained on `device`."""
    model = new_dictionary(vectors, shape, training.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=training.lr)
    steps_per_epoch = math.ceil(len(vectors) / training.batch)
    total = steps_per_epoch * training.epochs
    idle = torch.zeros(shape.size, device=device)   # vectors seen since each feature last fired
    first = 0
    if resume is not None:
        state = torch.load(io.BytesIO(resume), map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        idle, first = state["idle"].to(device), int(state["epoch"])
    for epoch in range(first, training.epochs):
        order = torch.randperm(len(vectors), generator=torch.Generator().manual_seed(training.seed * 7919 + epoch))
        running = 0.0
        for step in range(steps_per_epoch):
            done = epoch * steps_per_epoch + step
            for group in optimizer.param_groups:
                group["lr"] = training.lr * min(1.0, (total - done) / max(1, total // 5))
            x = vectors[order[step * training.batch:(step + 1) * training.batch]].to(device).float()
            loss, fired = _step(model, x, idle, training)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            model.renormalize()
            idle = torch.where(fired, torch.zeros_like(idle), idle + len(x))
            running += float(loss.detach())
        on_epoch(epoch + 1, running / steps_per_epoch)
        if checkpoint is not None and epoch + 1 < training.epochs:
            buffer = io.BytesIO()
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "idle": idle.cpu(),
                        "epoch": epoch + 1}, buffer)
            checkpoint(buffer.getvalue())
    return model.eval()


def _step(model: SparseDictionary, x: torch.Tensor, idle: torch.Tensor, training: Training):
    """The batch's loss and which features fired in it."""
    target = model.normalized(x)
    pre = model.pre_codes(x)
    codes = model.sparsify(pre, training=True)
    atoms = model.atoms     # an archetypal dictionary's atoms are a product worth computing once a step
    residual = target - (codes @ atoms + model.decoder_bias)
    loss = residual.pow(2).sum(1).mean()
    dead = idle > training.dead_after
    if dead.any() and training.aux_weight:
        # What the live features left out, from the strongest dead ones (Gao et al. 2024, AuxK).
        k = min(training.aux_k, int(dead.sum()))
        masked = pre * dead
        top = masked.topk(k, dim=1)
        aux_codes = torch.zeros_like(pre).scatter(1, top.indices, top.values)
        aux = (aux_codes @ atoms - residual.detach()).pow(2).sum(1).mean()
        loss = loss + training.aux_weight * aux / residual.detach().pow(2).sum(1).mean().clamp(min=1e-8)
    return loss, (codes > 0).any(0)
