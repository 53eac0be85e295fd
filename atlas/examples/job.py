"""The dataset-examples feature of a build: which layers need examples, one read of the folder
for those not cached, and the stored result of each (`atlas.store.examples`).

`examples_job` opens the folder when the build starts (a bad folder fails before any
rendering) and is run by the dataset side (`atlas.data.passes`) with every other
feature reading the same photos. `find_examples` is the same work as one call.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from ..core.text import plural
from ..data import sources
from ..data.passes import DatasetContext, Ride, run
from ..data.sources import Source
from ..data.stream import PassReport
from ..model.classifier import Model
from ..model.runtime import Runtime
from ..store import examples as stored
from .top import TopExamples, store_layer

DEFAULT_K = 9


@dataclass(frozen=True)
class ExamplesRequest:
    """What a build asks of dataset examples: the top `k` photos of `folder` for every rendered unit."""
    folder: Path
    k: int = DEFAULT_K


@dataclass
class ExamplesJob:
    """Dataset examples of some layers over one source: cached results, and the read for the rest."""
    model: Model
    source: Source
    root: Path
    k: int
    runtime: Runtime
    keys: dict[str, str]
    results: dict[str, dict | None]
    lead: bool = True                 # only the lead process reads for examples
    stages: int = 1
    reports: list[PassReport] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [layer for layer, result in self.results.items() if result is None]

    def rides(self, stage: int) -> list[Ride]:
        if not self.missing or not self.lead:
            return []
        top = TopExamples(self.missing, self.k)
        return [Ride("dataset examples", self.source, top, lambda report: self._store(top, report))]

    def _store(self, top: TopExamples, report: PassReport) -> None:
        self.reports.append(report)
        for layer in self.missing:
            if top.best.get(layer) is not None:   # else no readable image: nothing to store
                self.results[layer] = store_layer(self.model, self.source, self.root, key=self.keys[layer], layer=layer,
                                                  top=top, images=report.images, device=self.runtime.device)

    def found(self) -> dict[str, dict]:
        return {layer: result for layer, result in self.results.items() if result is not None}

    def finish(self) -> None:
        pass

    def summary(self) -> str | None:
        if not self.lead:
            return None
        read = next((r for r in self.reports if r.images), None)
        return (f"dataset examples for {plural(len(self.results), 'layer')}: "
                + (f"{read.rate:.1f} images/s" if read else "from cache"))


def examples_job(model: Model, layers: list[str], source: Source, *, root: Path, runtime: Runtime,
                 k: int = DEFAULT_K) -> ExamplesJob:
    fingerprint = source.fingerprint()
    keys = {layer: stored.examples_key(model.name, model.fingerprint, layer, dataset=fingerprint, k=k,
                                       size=model.input_size, precision=runtime.precision) for layer in layers}
    return ExamplesJob(model, source, Path(root), k, runtime, keys,
                       {layer: stored.load(root, key) for layer, key in keys.items()})


def job_for_build(context: DatasetContext, request: ExamplesRequest) -> ExamplesJob:
    """The build's examples job (its lead process alone finds examples), the folder opened now."""
    source = sources.image_folder(request.folder, context.model, "--examples")
    job = examples_job(context.model, list(context.layers), source, root=context.root, runtime=context.runtime,
                       k=request.k)
    job.lead = context.lead
    return job


def find_examples(model: Model, layers: list[str], folder: Path, *, root: Path, runtime: Runtime,
                  k: int = DEFAULT_K, on_batch=lambda n: None) -> tuple[dict[str, dict], PassReport]:
    """Top-k examples for every channel of `layers`, from the cache or one streaming pass.

    Returns ({layer: stored result}, the pass's report: images read, skipped, seconds;
    an empty report when everything was cached)."""
    job = examples_job(model, layers, sources.image_folder(folder, model), root=root, runtime=runtime, k=k)
    run([job], model, runtime, say=lambda text: None,
        progress=lambda count, label: contextlib.nullcontext(on_batch))
    return job.found(), (job.reports[0] if job.reports else PassReport())
