"""Dictionary features dissected as channels are: each feature's codes over a layer's map are
its activation map, thresholded at its top quantile and scored against the concepts' masks.

The dictionaries are learned during the build's dataset pass (stage 1 of the dictionary
job), so the features' dissection takes the two stages after it: quantile sketches at
stage 2, IoU counts at stage 3. It reads every photo in the lead process (the dictionary
is learned there), and its results are stored as a layer of their own,
`store.dictionary.feature_layer(layer)`, keyed by the trained dictionary too: features
learned again are dissected again.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..data.passes import Ride
from ..dictionary.label import StoredDictionary
from ..store import dissection as stored
from ..store.dictionary import feature_layer
from .job import DissectionJob

FIRST_STAGE = 2     # after the dictionary job's stage 1, where its dictionaries are learned


class EncodedMaps:
    """Consumer adaptor: `inner` sees each dictionary's codes at every position of its layer
    [B, D, H, W] as the maps of `feature_layer(layer)`."""

    def __init__(self, inner, dictionaries: dict[str, StoredDictionary], device: torch.device):
        self.inner = inner
        self.dictionaries = {layer: found.dictionary.to(device).eval() for layer, found in dictionaries.items()}
        self.layers = frozenset(dictionaries)

    @torch.no_grad()
    def update(self, batch) -> None:
        acts = {}
        for layer, dictionary in self.dictionaries.items():
            maps = batch.acts[layer]
            b, c, h, w = maps.shape
            codes = dictionary.encode(maps.permute(0, 2, 3, 1).reshape(-1, c))
            acts[feature_layer(layer)] = codes.reshape(b, h, w, -1).permute(0, 3, 1, 2)
        self.inner.update(dataclasses.replace(batch, acts=acts))


@dataclass
class FeatureDissectionJob(DissectionJob):
    dictionaries: Callable[[], dict[str, StoredDictionary]] = dict
    sizes: dict[str, int] = field(default_factory=dict)     # features per dissected feature layer
    found: dict[str, StoredDictionary] = field(default_factory=dict)
    stages: int = FIRST_STAGE + 2

    def units_of(self, layer: str) -> int:
        return self.sizes[layer]

    def rides(self, stage: int) -> list[Ride]:
        if stage < FIRST_STAGE:
            return []
        if stage == FIRST_STAGE:
            self._resolve()
        device = self.runtime.device
        return [Ride(f"feature {ride.label}", ride.source, EncodedMaps(ride.consumer, self.found, device),
                     ride.finish, ride.shard)
                for ride in super().rides(stage - FIRST_STAGE)]

    def _resolve(self) -> None:
        """The dictionaries learned by now, as layers of features with their keys."""
        self.found = {layer: d for layer, d in self.dictionaries().items()
                      if self.model.layer(layer).layout.spatial}
        self.layers = [feature_layer(layer) for layer in self.found]
        self.sizes = {feature_layer(layer): d.dictionary.shape.size for layer, d in self.found.items()}
        self.keys = {feature_layer(layer): stored.layer_key(self.model.name, self.model.fingerprint,
                                                            f"{feature_layer(layer)}@{d.key}", self.setup)
                     for layer, d in self.found.items()}

    def finish(self) -> None:
        if self.found:
            super().finish()

    def summary(self) -> str | None:
        if not self.found:
            return None
        return super().summary().replace("dissection of ", "dissection of the dictionary features of ", 1)


def feature_dissection(job: DissectionJob, dictionaries: Callable[[], dict[str, StoredDictionary]]
                       ) -> FeatureDissectionJob:
    """The dissection of the features of every dictionary `dictionaries()` gives once they are
    learned, against `job`'s concepts, by its settings."""
    return FeatureDissectionJob(job.model, [], job.source, job.root, job.setup, job.runtime,
                                dictionaries=dictionaries)
