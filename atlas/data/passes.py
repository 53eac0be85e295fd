"""The dataset side of a build: dataset examples and network dissection over real photos,
with as few reads of each folder as the work allows.

    read 1  every consumer that needs only pixels and activations: the top-k examples of
            the examples folder, and the quantile sketches of the dissection, riding on
            one pass when both read the same photos the same way (colour concepts of the
            examples folder)
    read 2  the dissection's IoU counts, which need the thresholds read 1 settled

Each pass is `atlas.dataset.stream`; what each consumer keeps is bounded and stored
by its own store module. Shards and torchrun ranks each take part of the images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

from . import stream as dataset
from ..model import distributed
from ..activation_atlas.job import AtlasJob, AtlasRequest, atlas_job
from .concepts import open_concepts
from ..dissection.job import DEFAULT_QUANTILE, DissectionJob, dissection_job
from ..examples.top import ExamplesPass, examples_pass
from ..model.classifier import Model
from ..core.text import format_duration, plural

Progress = Callable[[int, str], ContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class DatasetRequest:
    """What a build asks of the dataset side (None: not asked)."""
    examples_dir: Path | None = None
    examples_k: int = 9
    dissect_dir: Path | None = None
    quantile: float = DEFAULT_QUANTILE
    mask_size: int | None = None          # None: half the model's input side (Broden's convention)
    batch_size: int = 32
    workers: int | None = None            # decoding processes; None: every core but one
    shard: tuple[int, int] = (1, 1)       # this process's share of the images (shards x torchrun ranks)
    atlas: AtlasRequest | None = None     # activation-atlas samples (the atlas itself is built after)


@dataclass
class DatasetOutcome:
    examples: dict = field(default_factory=dict)
    dissection: dict = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)     # dissected layers waiting for other shards
    atlas: AtlasJob | None = None                         # samples stored: ready to lay out and render
    reports: dict[str, dataset.PassReport] = field(default_factory=dict)   # by pass name


@dataclass
class Ride:
    """A consumer that wants to ride on a read of `source` (all of it, or one shard)."""
    name: str
    source: object
    shard: tuple[int, int] | None
    consumer: object
    finish: Callable[[dataset.PassReport], object]


@dataclass
class Read:
    """One pass over a source and the consumers riding on it."""
    source: object
    shard: tuple[int, int] | None
    rides: list[Ride] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " and ".join(ride.name for ride in self.rides)

    @property
    def consumers(self) -> list:
        return [ride.consumer for ride in self.rides]


def reads(wanted: list[Ride]) -> list[Read]:
    """The fewest reads that feed every ride: rides on the same photos and the same shard share one."""
    found: list[Read] = []
    for ride in wanted:
        read = next((r for r in found if r.shard == ride.shard and same_photos(r.source, ride.source)), None)
        if read is None:
            read = Read(ride.source, ride.shard)
            found.append(read)
        read.rides.append(ride)
    return found


def same_photos(a, b) -> bool:
    """Whether two sources read the same files the same way (so one pass can feed both)."""
    if a is None or b is None:
        return False
    return (getattr(a, "paths", None) is not None and getattr(a, "paths", None) == getattr(b, "paths", None)
            and (a.size, a.resize) == (getattr(b, "size", None), getattr(b, "resize", None)))


def run(model: Model, layers: list[str], request: DatasetRequest, root: Path, device, precision: str,
        say: Callable[[str], None], progress: Progress) -> DatasetOutcome:
    outcome = DatasetOutcome()
    examples: ExamplesPass | None = None
    dissect: DissectionJob | None = None
    if request.examples_dir is not None:
        examples = examples_pass(model, layers, dataset.image_folder(request.examples_dir, model), root,
                                 request.examples_k, precision)
    if request.dissect_dir is not None:
        source = open_concepts(request.dissect_dir, model, request.mask_size)
        dissect = dissection_job(model, layers, source, root, request.quantile, request.shard, precision)

    def stream(name: str, source, consumers, indices=None) -> dataset.PassReport:
        count = len(source) if indices is None else len(indices)
        with progress(count, name) as advance:
            report = dataset.stream(model, source, consumers, device, request.batch_size, request.workers,
                                    indices, precision, advance)
        outcome.reports[name] = report
        if report.skipped:
            say(f"{name}: skipped {len(report.skipped)} unreadable images of {count}")
        return report

    if request.atlas is not None:
        outcome.atlas = atlas_job(model, dataset.image_folder(request.atlas.folder, model, "--activation-atlas"),
                                  request.atlas, root, precision)

    # Read 1: every consumer that needs only the photos: examples (all images), dissection
    # sketches (this shard's) and atlas samples, one pass per distinct way of reading them.
    mine = None if request.shard == (1, 1) else request.shard
    wanted = []
    if examples is not None:
        top = examples.consumer()
        if top is None:
            outcome.examples = examples.finish(None, dataset.PassReport(), device)
        else:
            wanted.append(Ride("dataset examples", examples.source, None, top,
                               lambda report, top=top: outcome.examples.update(examples.finish(top, report, device))))
    if dissect is not None and (sketches := dissect.quantile_consumer(device)) is not None:
        wanted.append(Ride("dissection quantiles", dissect.source, mine, sketches,
                           lambda report: dissect.finish_quantiles(sketches, report)))
    if outcome.atlas is not None and (sampler := outcome.atlas.sampler()) is not None:
        wanted.append(Ride("activation-atlas samples", outcome.atlas.source, None, sampler,
                           lambda report: outcome.atlas.finish_samples(sampler, report)))
    for read in reads(wanted):
        indices = dataset.shard_indices(len(read.source), read.shard) if read.shard else None
        report = stream(read.name, read.source, read.consumers, indices)
        for ride in read.rides:
            ride.finish(report)
    if examples is not None:
        rate = next((r for name, r in outcome.reports.items() if "dataset examples" in name), None)
        say(f"dataset examples for {plural(len(layers), 'layer')}: "
            + (f"{rate.rate:.1f} images/s" if rate and rate.images else "from cache"))
    if dissect is None:
        return outcome

    # Read 2: IoU counts, once every shard's sketch is in (torchrun ranks wait for each other here).
    distributed.wait_for_all()
    waiting = dissect.finish_quantiles(None, dataset.PassReport())
    counter = dissect.counts_consumer(device)
    report = dataset.PassReport()
    if counter is not None:
        indices = dataset.shard_indices(len(dissect.source), request.shard)
        report = stream("dissection IoU", dissect.source, [counter], indices)
    distributed.wait_for_all()
    outcome.waiting = sorted(set(waiting) | set(dissect.finish_counts(counter, report)))
    outcome.dissection = dissect.results()
    _summarize(dissect, outcome, say)
    return outcome


def _summarize(job: DissectionJob, outcome: DatasetOutcome, say) -> None:
    source = job.source
    what = (f"dissection of {plural(len(job.layers), 'layer')} against {source.root} "
            f"({source.kind}, {plural(len(job.concepts.names), 'concept')})")
    if outcome.waiting:
        k, n = job.shard
        say(f"{what}: shard {k}/{n} stored its part; {len(outcome.waiting)} layers wait for the other shards: "
            "run the same command again once every shard has finished")
        return
    detectors = sum(sum(result.detects(u) is not None for u in range(result.units))
                    for result in outcome.dissection.values())
    units = sum(result.units for result in outcome.dissection.values())
    rates = [f"{name.split()[-1]} {r.rate:.1f} images/s" for name, r in outcome.reports.items()
             if "dissection" in name and r.images]
    seconds = sum(r.seconds for name, r in outcome.reports.items() if "dissection" in name)
    say(f"{what}: {detectors} of {units} units detect a concept (IoU >= 0.04)"
        + (f"; {', '.join(rates)}, {format_duration(seconds)}" if rates else "; from cache"))
