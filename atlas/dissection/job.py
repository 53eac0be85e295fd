"""One model's layers dissected against one concept dataset, in two stages of the dataset pass.

    stage 0  per-unit quantile sketches (can ride on the read that finds dataset examples)
             -> each shard stores its sketch; once all are in, the merged thresholds
    stage 1  IoU counts under those thresholds
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

from ..core.text import format_duration, plural
from ..data.concepts import open_concepts
from ..data.concepts.vocabulary import Concepts
from ..data.passes import DatasetContext, Ride
from ..data.stream import PassReport
from ..model.classifier import Model
from ..model.runtime import Runtime
from ..store import dissection as stored
from ..store.dissection import LayerDissection, Setup
from . import sketch
from .counts import IoUCounter, QuantileCounter

DEFAULT_QUANTILE = 0.005   # NetDissect: a unit's region is where it is in its top 0.5 % of activations


@dataclass(frozen=True)
class DissectionRequest:
    """What a build asks of network dissection: its layers against the concepts of `folder`."""
    folder: Path
    quantile: float = DEFAULT_QUANTILE
    mask_size: int | None = None          # None: half the model's input side (Broden's convention)


@dataclass
class DissectionJob:
    model: Model
    layers: list[str]
    source: object                           # a concepts source (atlas.data.concepts)
    root: Path
    setup: Setup
    runtime: Runtime
    shard: tuple[int, int] = (1, 1)
    keys: dict[str, str] = field(default_factory=dict)
    stages: int = 2
    reports: list[PassReport] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)    # layers waiting for other shards

    @property
    def concepts(self) -> Concepts:
        return self.source.concepts

    def results(self) -> dict[str, LayerDissection]:
        found = {layer: stored.load(self.root, key) for layer, key in self.keys.items()}
        return {layer: result for layer, result in found.items() if result is not None}

    def _todo(self) -> list[str]:
        done = self.results()
        return [layer for layer in self.layers if layer not in done]

    # the protocol (atlas.data.passes) -----------------------------------------------

    def rides(self, stage: int) -> list[Ride]:
        mine = None if self.shard == (1, 1) else self.shard
        if stage == 0:
            sketches = self.quantile_consumer(self.runtime.device)
            return [] if sketches is None else [
                Ride("dissection quantiles", self.source, sketches,
                     lambda report: self._done(report, self.finish_quantiles(sketches, report)), mine)]
        self.waiting = self.finish_quantiles(None, PassReport())
        counter = self.counts_consumer(self.runtime.device)
        return [] if counter is None else [
            Ride("dissection IoU", self.source, counter, lambda report: self._done(report, self.store_counts(counter, report)),
                 self.shard)]

    def _done(self, report: PassReport, _result) -> None:
        self.reports.append(report)

    def finish(self) -> None:
        self.waiting = sorted(set(self.waiting) | set(self.merge_counts()))

    def summary(self) -> str:
        source = self.source
        what = (f"dissection of {plural(len(self.layers), 'layer')} against {source.root} "
                f"({source.kind}, {plural(len(self.concepts.names), 'concept')})")
        if self.waiting:
            k, n = self.shard
            return (f"{what}: shard {k}/{n} stored its part; {len(self.waiting)} layers wait for the other shards: "
                    "run the same command again once every shard has finished")
        results = self.results().values()
        detectors = sum(sum(result.detects(u) is not None for u in range(result.units)) for result in results)
        dead = sum(len(stored.dead_units(result)) for result in results)
        units = sum(result.units for result in results)
        few = [result for result in results if not result.enough_images]
        read = [r for r in self.reports if r.images]
        rates = ", ".join(f"{r.rate:.1f} images/s" for r in read)
        found = (f"{detectors} of {units} units detect a concept (IoU >= {stored.DETECTOR_IOU} on both halves "
                 f"of the photos), {dead} dead")
        if few:
            found += (f"; only {min(r.images for r in few)} photos: too few to confirm a detector "
                      f"(bring at least {stored.MIN_IMAGES})")
        return (f"{what}: {found}"
                + (f"; {rates}, {format_duration(sum(r.seconds for r in read))}" if read else "; from cache"))

    # stage 0 ------------------------------------------------------------------------

    def quantile_consumer(self, device) -> QuantileCounter | None:
        """Sketches for the layers whose thresholds are not known and whose shard has none stored."""
        layers = [layer for layer in self._todo() if stored.load_thresholds(self.root, self.keys[layer]) is None
                  and stored.load_partial(self.root, self.keys[layer], "quantiles", self.shard) is None]
        if not layers:
            return None
        return QuantileCounter({layer: self.units_of(layer) for layer in layers}, device)

    def units_of(self, layer: str) -> int:
        return self.model.layer(layer).channels

    def finish_quantiles(self, consumer: QuantileCounter | None, report: PassReport) -> list[str]:
        """Store this shard's sketches, then merge the thresholds of every layer whose shards
        are all in; returns the layers still waiting for other shards."""
        if consumer is not None:
            for layer, counts in consumer.counts.items():
                stored.store_partial(self.root, self.keys[layer], "quantiles", shard=self.shard,
                                     arrays={"counts": counts.cpu().numpy()},
                                     meta={"images": report.images, "skipped": len(report.skipped)})
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
                                    {**meta, "saturated": int(sketch.saturated(arrays["counts"], self.setup.quantile).sum())},
                                    bands=sketch.band(arrays["counts"], stored.DEAD_EPS))
        return waiting

    # stage 1 ------------------------------------------------------------------------

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

    def store_counts(self, consumer: IoUCounter, report: PassReport) -> None:
        """Store this shard's counts, each array with a leading axis for the two halves."""
        for layer, halves in consumer.counts.items():
            stored.store_partial(self.root, self.keys[layer], "counts", shard=self.shard,
                                 arrays={name: np.stack([getattr(c, name).cpu().numpy() for c in halves])
                                         for name in ("intersection", "activation", "ground")}
                                 | {"half_images": np.array([c.images for c in halves], np.int64)},
                                 meta={"images": report.images, "skipped": len(report.skipped)})

    def merge_counts(self) -> list[str]:
        """Merge every layer whose shards' counts are all in into its result; returns the
        layers still waiting for other shards."""
        waiting = []
        for layer in self._todo():
            key = self.keys[layer]
            merged = stored.merged_partials(self.root, key, "counts", self.shard[1])
            found = stored.load_thresholds(self.root, key)
            if merged is None or found is None:
                waiting.append(layer)
                continue
            meta, arrays = merged
            counts = [arrays[name] for name in ("intersection", "activation", "ground")]
            scores = stored.iou(*(c.sum(0) for c in counts), self.concepts.category_of)
            halves = np.stack([stored.iou(*(c[h] for c in counts), self.concepts.category_of) for h in (0, 1)])
            bands = stored.load_bands(self.root, key)
            stored.store(self.root, key, LayerDissection(
                self.model.name, self.model.fingerprint, layer, self.setup, self.concepts.names,
                self.concepts.categories, self.concepts.category_of, found[0], scores.astype(np.float32),
                int(meta["images"]), int(meta["skipped"]), halves.astype(np.float32),
                tuple(int(n) for n in arrays["half_images"]), bands.get("low"), bands.get("high"),
                bands.get("dead")))
        return waiting


def dissection_job(model: Model, layers: list[str], source, *, root: Path, runtime: Runtime,
                   quantile: float = DEFAULT_QUANTILE, shard: tuple[int, int] = (1, 1)) -> DissectionJob:
    """The job for `layers` (spatial ones; a flat layer has no map to compare with masks)."""
    spatial = [layer for layer in layers if model.layer(layer).layout.spatial]
    setup = Setup(str(source.root), source.kind, source.fingerprint(), float(quantile), int(source.mask_size),
                  runtime.precision)
    keys = {layer: stored.layer_key(model.name, model.fingerprint, layer, setup) for layer in spatial}
    return DissectionJob(model, spatial, source, Path(root), setup, runtime, shard, keys)


def job_for_build(context: DatasetContext, request: DissectionRequest) -> DissectionJob:
    """The build's dissection (every process counts its share of the images), the concepts opened now."""
    source = open_concepts(request.folder, context.model, request.mask_size)
    return dissection_job(context.model, list(context.layers), source, root=context.root, runtime=context.runtime,
                          quantile=request.quantile, shard=context.shard)
