"""The dataset side's one protocol: a feature declares what it needs read, the runner reads it.

A feature that reads photos (dataset examples, dissection, the activation atlas,
dictionary features) is a `DatasetJob`. At each stage the runner asks every job
for its `Ride`s: a consumer that wants a source read, all of it or one shard. Rides
on the same photos and the same shard share one read: one decode of each photo and
one forward pass to the union of the layers they need. After the read each ride
gets the pass's report. Between stages the processes of a torchrun wait for each
other, because a later stage may need what every rank stored in an earlier one
(dissection's thresholds before its overlap counts). Once every stage has run,
each job finishes its work (renders its pictures) and says in one line what it found.

The runner knows no feature by name: a new one is its own folder, a job that follows
this protocol, and one line in the pipeline's registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager, Protocol, Sequence

from ..core.settings import Settings
from ..model import distributed
from ..model.classifier import Model
from ..model.runtime import Runtime
from . import sources
from .sources import Source
from .stream import Consumer, PassReport, stream

Progress = Callable[[int, str], ContextManager[Callable[[int], None]]]


@dataclass(frozen=True)
class DatasetContext:
    """What a feature that reads photos knows of the build it serves."""
    model: Model
    runtime: Runtime
    root: Path                                # the cache
    settings: Settings                        # the build's render settings (for pictures a feature renders)
    layers: tuple[str, ...]                   # the build's rendered layers, in forward order
    shard: tuple[int, int] = (1, 1)           # this process's share of the images (shards x torchrun ranks)
    lead: bool = True                         # the one process that does what only one must (rank 0)
    say: Callable[..., None] = print
    progress: Progress | None = None


@dataclass(frozen=True)
class Ride:
    """A consumer that wants `source` read: every image, or shard K of N (1-based)."""
    label: str                                # how progress and messages name the read
    source: Source
    consumer: Consumer
    finish: Callable[[PassReport], None]      # told what the read saw, once it is over
    shard: tuple[int, int] | None = None


class DatasetJob(Protocol):
    """What a feature that reads photos does, stage by stage."""

    stages: int                               # how many stages it takes part in (0 .. stages - 1)

    def rides(self, stage: int) -> list[Ride]: ...   # what it wants read at this stage ([] for nothing)

    def finish(self) -> None: ...             # after every stage: the work that follows the reads

    def summary(self) -> str | None: ...      # one line for the build's output


@dataclass
class Read:
    """One pass over a source and the rides sharing it."""
    source: Source
    shard: tuple[int, int] | None
    rides: list[Ride] = field(default_factory=list)

    @property
    def label(self) -> str:
        return " and ".join(ride.label for ride in self.rides)


def reads(wanted: Sequence[Ride]) -> list[Read]:
    """The fewest reads that feed every ride: rides on the same photos and the same shard share one."""
    found: list[Read] = []
    for ride in wanted:
        read = next((r for r in found if r.shard == ride.shard and same_photos(r.source, ride.source)), None)
        if read is None:
            read = Read(ride.source, ride.shard)
            found.append(read)
        read.rides.append(ride)
    return found


def same_photos(a: Source, b: Source) -> bool:
    """Whether two sources read the same files the same way (so one pass can feed both)."""
    paths = getattr(a, "paths", None)
    return (paths is not None and paths == getattr(b, "paths", None)
            and (a.size, a.resize) == (getattr(b, "size", None), getattr(b, "resize", None)))


def run(jobs: Sequence[DatasetJob], model: Model, runtime: Runtime, *, say: Callable[[str], None],
        progress: Progress) -> None:
    """Every stage of every job, the fewest reads each stage allows; then each job's finish and summary."""
    for stage in range(max((job.stages for job in jobs), default=0)):
        if stage:
            distributed.wait_for_all()
        for read in reads([ride for job in jobs if stage < job.stages for ride in job.rides(stage)]):
            indices = sources.shard_indices(len(read.source), read.shard) if read.shard else None
            count = len(read.source) if indices is None else len(indices)
            with progress(count, read.label) as advance:
                report = stream(model, read.source, [ride.consumer for ride in read.rides], runtime,
                                indices=indices, on_batch=advance)
            if report.skipped:
                say(f"{read.label}: skipped {len(report.skipped)} unreadable images of {count}")
            for ride in read.rides:
                ride.finish(report)
    distributed.wait_for_all()
    for job in jobs:
        job.finish()
        line = job.summary()
        if line:
            say(line)
