"""What one dataset pass collects for the two-photo test, beside any other consumer.

The test needs every photo ranked by every tested channel, not a top-k: the weak
queries are the lowest ranks, and the random reference is drawn from the rest. So
`ChannelMeans` keeps the full [photos, channels] table (a thousand photos by a
layer's channels is a few MB). `JudgeEmbeddings` embeds each photo's evaluation view,
the very frame the subject ranked it by, with a judge the caller brings: atlas does
not ship one, and a benchmark picks the judge it trusts. Both fill rows by photo id,
so a photo that did not decode stays NaN and is found afterwards.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..data.stream import Batch

# images [B, 3, S, S] in [0, 1] on the pass's device -> (logits [B, K], penultimate [B, D])
Embed = Callable[[object], tuple[np.ndarray, np.ndarray]]


class ChannelMeans:
    """Every photo's mean activation for every channel of `layers` (the channel objective
    a picture maximizes): `means[layer]` is [count, channels], NaN where no photo came."""

    def __init__(self, layers: list[str], count: int):
        self.layers = frozenset(layers)
        self.means: dict[str, np.ndarray | None] = {layer: None for layer in layers}
        self.count = count

    def update(self, batch: Batch) -> None:
        ids = batch.ids.cpu().numpy()
        for layer in self.layers:
            out = batch.acts[layer]
            values = (out.flatten(2).mean(2) if out.dim() == 4 else out).float().cpu().numpy()
            if self.means[layer] is None:
                self.means[layer] = np.full((self.count, values.shape[1]), np.nan, dtype=np.float32)
            self.means[layer][ids] = values


class JudgeEmbeddings:
    """A judge's logits and penultimate features of each photo's evaluation view (`embed`
    does the judging). It asks the subject for no layer, so it adds nothing to the
    pass's forward."""
    layers: frozenset[str] = frozenset()

    def __init__(self, embed: Embed, count: int):
        self.embed, self.count = embed, count
        self.logits: np.ndarray | None = None
        self.penultimate: np.ndarray | None = None

    def update(self, batch: Batch) -> None:
        logits, pooled = (np.asarray(part, dtype=np.float32) for part in self.embed(batch.images))
        if self.logits is None:
            self.logits = np.full((self.count, logits.shape[1]), np.nan, dtype=np.float32)
            self.penultimate = np.full((self.count, pooled.shape[1]), np.nan, dtype=np.float32)
        ids = batch.ids.cpu().numpy()
        self.logits[ids], self.penultimate[ids] = logits, pooled

    def read(self) -> np.ndarray:
        """[count] True for every photo the pass embedded."""
        if self.logits is None:
            return np.zeros(self.count, dtype=bool)
        return ~np.isnan(self.logits[:, 0])
