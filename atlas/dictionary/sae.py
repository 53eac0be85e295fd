"""A sparse dictionary of one layer's activations: a sparse autoencoder, written for atlas.

An activation vector x (one position of a layer's map, C channels) is encoded into
D >> C codes of which at most k are non-zero, and decoded back as a sum of the
dictionary's atoms (rows of the decoder):

    z = sparsify(relu(W_enc (x' - b_dec) + b_enc)),   x' = (x - mean) / scale
    x^ = (z W_dec + b_dec) * scale + mean

Each atom is a direction in the layer's channel space, so a feature renders with the
direction objective as any direction does. Three ways to sparsify:

    topk       the k largest codes of each vector (Gao et al. 2024)
    batchtopk  the k x B largest codes of a training batch of B vectors, so a vector
               may use more or fewer than k; at inference a threshold learned during
               training stands in for the batch (Bussmann et al. 2024)
    archetypal batchtopk whose atoms are kept near the data: each atom is a convex
               mix of a fixed set of data points plus a bounded nudge (Fel et al. 2025,
               "Archetypal SAE"), which makes dictionaries of two seeds agree more

Atoms of topk and batchtopk stay at unit length (a code is then how much of the atom a
vector holds). Dead features (no code above zero for many batches) get a gradient from
an auxiliary loss: the top `aux_k` dead codes reconstruct what the live ones left out
(Gao et al. 2024). Training (`atlas.dictionary.train`) and metrics are their own modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    import numpy as np

KINDS = ("topk", "batchtopk", "archetypal")


@dataclass(frozen=True)
class DictionaryShape:
    """What decides a dictionary besides its data: part of its cache key."""
    channels: int
    size: int                 # D: how many features
    k: int                    # codes kept per vector (on average, for batchtopk)
    kind: str = "topk"
    candidates: int = 4096    # archetypal: data points the atoms mix
    relax: float = 0.1        # archetypal: the nudge's bound, as a share of the data's scale

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown dictionary kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if not 1 <= self.k <= self.size:
            raise ValueError(f"k must be between 1 and the dictionary size {self.size}, got {self.k}")

    def as_dict(self) -> dict:
        return asdict(self)


class SparseDictionary(nn.Module):
    def __init__(self, shape: DictionaryShape, mean: torch.Tensor, scale: float,
                 candidates: torch.Tensor | None = None, generator: torch.Generator | None = None):
        super().__init__()
        self.shape = shape
        c, d = shape.channels, shape.size
        atoms = F.normalize(torch.randn(d, c, generator=generator), dim=1)
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("threshold", torch.tensor(0.0))    # batchtopk's inference threshold
        self.encoder = nn.Parameter(atoms.T.clone())             # [C, D], tied to the decoder at the start
        self.encoder_bias = nn.Parameter(torch.zeros(d))
        self.decoder_bias = nn.Parameter(torch.zeros(c))
        if shape.kind == "archetypal":
            if candidates is None:
                raise ValueError("an archetypal dictionary needs candidate data points")
            self.register_buffer("candidates", candidates.float().clone())   # [M, C], normalized data
            self.mix = nn.Parameter(torch.randn(d, len(candidates), generator=generator) * 0.01)
            self.nudge = nn.Parameter(torch.zeros(d, c))
        else:
            self.decoder_weight = nn.Parameter(atoms.clone())    # [D, C]

    @property
    def atoms(self) -> torch.Tensor:
        """[D, C] the decoder's atoms, in the normalized space."""
        if self.shape.kind != "archetypal":
            return self.decoder_weight
        bound = self.shape.relax
        nudge = self.nudge * (bound / self.nudge.norm(dim=1, keepdim=True).clamp(min=bound))
        return torch.softmax(self.mix, dim=1) @ self.candidates + nudge

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean) / self.scale

    def pre_codes(self, x: torch.Tensor) -> torch.Tensor:
        """[N, D] codes before sparsity, of raw activation vectors x [N, C]."""
        return F.relu((self.normalized(x) - self.decoder_bias) @ self.encoder + self.encoder_bias)

    def sparsify(self, codes: torch.Tensor, training: bool = False) -> torch.Tensor:
        k = self.shape.k
        if self.shape.kind == "topk":
            top = codes.topk(k, dim=1)
            return torch.zeros_like(codes).scatter(1, top.indices, top.values)
        if training:
            flat = codes.flatten()
            kept = flat.topk(min(k * len(codes), len(flat)))
            sparse = torch.zeros_like(flat).scatter(0, kept.indices, kept.values).view_as(codes)
            positive = kept.values[kept.values > 0]
            if len(positive):   # the running threshold: what the batch's k-th largest codes were worth
                self.threshold.mul_(0.99).add_(0.01 * positive.min().detach())
            return sparse
        return codes * (codes > self.threshold)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[N, D] sparse codes of raw activation vectors x [N, C]."""
        return self.sparsify(self.pre_codes(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """[N, C] raw activation vectors from codes."""
        return (codes @ self.atoms + self.decoder_bias) * self.scale + self.mean

    def directions(self) -> torch.Tensor:
        """[D, C] each feature's direction in the layer's raw channel space, unit length:
        the objective its picture maximizes, and what ranks its strongest channels."""
        return F.normalize(self.atoms.detach() * self.scale, dim=1)

    def weights(self) -> dict[str, "np.ndarray"]:
        """Everything that makes this dictionary, as arrays (what the store keeps; `from_weights` reads it)."""
        return {name: value.detach().cpu().numpy() for name, value in self.state_dict().items()}

    @classmethod
    def from_weights(cls, shape: DictionaryShape, weights: dict) -> "SparseDictionary":
        state = {name: torch.as_tensor(value) for name, value in weights.items()}
        model = cls(shape, state["mean"], 1.0, state.get("candidates"))
        model.load_state_dict(state)
        return model.eval()

    def renormalize(self) -> None:
        """Atoms back to unit length after a step (topk, batchtopk); archetypal atoms are
        convex mixes of normalized data and need none."""
        if self.shape.kind != "archetypal":
            with torch.no_grad():
                self.decoder_weight.div_(self.decoder_weight.norm(dim=1, keepdim=True).clamp(min=1e-8))
