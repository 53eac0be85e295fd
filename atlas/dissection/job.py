"""One model's layers dissected against one concept dataset, in two streaming passes.

    pass 1  per-unit quantile sketches (can ride on the pass that finds dataset examples)
            -> each shard stores its sketch; once all are in, the merged thresholds
    pass 2  IoU counts under those thresholds
            -> each shard stores its counts; once all are in, the merged result per layer

Each step is stored whole or not at all and named by the layer's key, so a killed
run does the unfinished pass of its own shard again, and a finished one computes
nothing. With N shards (job arrays, `--shard K/N`) a shard that finds the other
shards' sketches missing stops after pass 1 and says so: running it again once
they are in continues with pass 2. torchrun ranks wait for each other instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.concepts.vocabulary import Concepts
from ..data.stream import PassReport
from ..model.classifier import Model
from ..store import dissection as stored
from ..store.dissection import LayerDissection, Setup
from . import sketch
from .counts import IoUCounter, QuantileCounter

DEFAULT_QUANTILE = 0.005   # NetDissect: a unit's region is where it is in its top 0.5 % of activations


@dataclass
class DissectionJob:
    model: Model
    layers: list[str]
    source: object                           # a concepts source (atlas.concepts)
    root: Path
    setup: Setup
    shard: tuple[int, int] = (1, 1)
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def concepts(self) -> Concepts:
        return self.source.concepts

    def results(self) -> dict[str, LayerDissection]:
        found = {layer: stored.load(self.root, key) for layer, key in self.keys.items()}
        return {layer: result for layer, result in found.items() if result is not None}

    def _todo(self) -> list[str]:
        done = self.results()
        return [layer for layer in self.layers if layer not in done]

    # pass 1 ------------------------------------------------------------------------

    def quantile_consumer(self, device) -> QuantileCounter | None:
        """Sketches for the layers whose thresholds are not known and whose shard has none stored."""
        layers = [layer for layer in self._todo() if stored.load_thresholds(self.root, self.keys[layer]) is None
                  and stored.load_partial(self.root, self.keys[layer], "quantiles", self.shard) is None]
        if not layers:
            return None
        return QuantileCounter({layer: self.model.layer(layer).channels for layer in layers}, device)

    def finish_quantiles(self, consumer: QuantileCounter | None, report: PassReport) -> list[str]:
        """Store this shard's sketches, then merge the thresholds of every layer whose shards
        are all in; returns the layers still waiting for other shards."""
        if consumer is not None:
            for layer, counts in consumer.counts.items():
                stored.store_partial(self.root, self.keys[layer], "quantiles", self.shard,
                                     {"counts": counts.cpu().numpy()},
                                     {"images": report.images, "skipped": len(report.skipped)})
        waiting = []
        for layer in self._todo():
            key = self.keys[layer]
            if stored.load_thresholds(self.root, key) is not None:
                continue
            merged = stored.merged_partials(self.root, key, "quantiles", self.shard[1])
            if merged is None:
                waiting.append(layer)
                continue
            meta, arrays = merged
            thresholds = sketch.quantile(arrays["counts"], self.setup.quantile)
            stored.store_thresholds(self.root, key, thresholds,
                                    {**meta, "saturated": int(sketch.saturated(arrays["counts"], self.setup.quantile).sum())})
        return waiting

    # pass 2 ------------------------------------------------------------------------

    def counts_consumer(self, device) -> IoUCounter | None:
        thresholds = {}
        for layer in self._todo():
            key = self.keys[layer]
            found = stored.load_thresholds(self.root, key)
            if found is not None and stored.load_partial(self.root, key, "counts", self.shard) is None:
                thresholds[layer] = torch.from_numpy(found[0])
        if not thresholds:
            return None
        return IoUCounter(thresholds, self.concepts, self.setup.mask_size, device)

    def finish_counts(self, consumer: IoUCounter | None, report: PassReport) -> list[str]:
        """Store this shard's counts, then merge every layer whose shards are all in into its
        result; returns the layers still waiting for other shards."""
        if consumer is not None:
            for layer, counts in consumer.counts.items():
                stored.store_partial(self.root, self.keys[layer], "counts", self.shard,
                                     {"intersection": counts.intersection.cpu().numpy(),
                                      "activation": counts.activation.cpu().numpy(),
                                      "ground": counts.ground.cpu().numpy()},
                                     {"images": report.images, "skipped": len(report.skipped)})
        waiting = []
        for layer in self._todo():
            key = self.keys[layer]
            merged = stored.merged_partials(self.root, key, "counts", self.shard[1])
            found = stored.load_thresholds(self.root, key)
            if merged is None or found is None:
                waiting.append(layer)
                continue
            meta, arrays = merged
            scores = stored.iou(arrays["intersection"], arrays["activation"], arrays["ground"],
                                self.concepts.category_of)
            stored.store(self.root, key, LayerDissection(
                self.model.name, self.model.fingerprint, layer, self.setup, self.concepts.names,
                self.concepts.categories, self.concepts.category_of, found[0], scores.astype(np.float32),
                int(meta["images"]), int(meta["skipped"])))
        return waiting


def dissection_job(model: Model, layers: list[str], source, root: Path, quantile: float = DEFAULT_QUANTILE,
                   shard: tuple[int, int] = (1, 1), precision: str = "fp32") -> DissectionJob:
    """The job for `layers` (spatial ones; a flat layer has no map to compare with masks)."""
    spatial = [layer for layer in layers if model.layer(layer).layout.spatial]
    setup = Setup(str(source.root), source.kind, source.fingerprint(), float(quantile), int(source.mask_size),
                  precision)
    keys = {layer: stored.layer_key(model.name, model.fingerprint, layer, setup) for layer in spatial}
    return DissectionJob(model, spatial, source, Path(root), setup, shard, keys)
