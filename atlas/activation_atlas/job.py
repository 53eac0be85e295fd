"""The activation-atlas feature of a build: which layers, how many samples, and the work in order.

    sample   `AtlasSampler` rides on the dataset pass (`atlas.data.passes`): seeded positions
             of the chosen photos, vectors and attributions, stored per layer
    finish   each layer's atlas (and the class atlas) laid out, binned, its icons rendered
             and stored (`atlas.activation_atlas.assemble`)

`job_for_build` resolves the request against the model when the build starts, so a
bad folder, layer or class fails before any unit renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import AtlasError
from ..core.settings import Settings
from ..data import sources
from ..data.passes import DatasetContext, Ride
from ..data.stream import PassReport
from ..model.classifier import Model
from ..model.runtime import Runtime
from ..store import activation_atlas as stored
from .assemble import build_atlas
from .sampling import AtlasSampler

DEFAULT_POSITIONS = 4         # samples per photo
DEFAULT_MIN_COUNT = 5         # a cell needs this many samples to get an icon
DEFAULT_POWER = 3.0           # of the cosine in an icon's objective (the reference uses 2 to 4)
# Most samples per layer when the user names no number: the layout (UMAP) costs about
# 100 s and 2 GB at 100,000 samples on two cores and grows with them (BENCHMARKS.md,
# "Activation atlas"), and sampling costs one forward-mode pass per sample.
GPU_SAMPLES, CPU_SAMPLES = 100_000, 20_000


@dataclass(frozen=True)
class ActivationAtlasRequest:
    """What a build asks of the activation atlas."""
    folder: Path
    layers: str | None = None         # names or globs; None: three of the rendered layers (`atlas_layers`)
    positions: int = DEFAULT_POSITIONS
    samples: int | None = None        # most samples kept per layer (None: as the device suits)
    layout: str = "umap"
    levels: tuple[int, ...] | None = None
    min_count: int = DEFAULT_MIN_COUNT
    class_index: int | None = None    # also a class atlas of the deepest layer
    icon_steps: int = 256
    power: float = DEFAULT_POWER
    whiten: str = "auto"              # "auto": on the deeper half of the network; "on"; "off"


def atlas_layers(model: Model, rendered: list[str], names: str | None) -> tuple[str, ...]:
    """The layers an activation atlas covers: those named, else three of the rendered layers
    with a map (first third, second third, deepest), else of the model's default layers."""
    if names:
        chosen = tuple(layer.name for layer in model.select_layers(names))
        flat = [name for name in chosen if not model.layer(name).layout.spatial]
        if flat:
            raise AtlasError(f"--atlas-layers: an activation atlas needs a layer with positions; {flat[0]} is flat")
        return chosen
    spatial = [n for n in rendered if n != model.output_layer and model.layer(n).layout.spatial] or \
        [l.name for l in model.layers if l.default and l.layout.spatial]
    if not spatial:
        raise AtlasError(f"{model.name} has no layer with a map for an activation atlas: name one with --atlas-layers")
    picks = {spatial[len(spatial) // 3], spatial[2 * len(spatial) // 3], spatial[-1]}
    return tuple(n for n in spatial if n in picks)


def default_samples(runtime: Runtime) -> int:
    return GPU_SAMPLES if runtime.is_cuda else CPU_SAMPLES


@dataclass
class ActivationAtlasJob:
    model: Model
    source: sources.Source
    request: ActivationAtlasRequest
    root: Path
    runtime: Runtime
    settings: Settings                # the build's; icons take their size, steps and recipe from the request
    layers: tuple[str, ...]
    samples: int | None
    seed: int
    keys: dict[str, str] = field(default_factory=dict)
    lead: bool = True                 # only the lead process samples and renders the atlas
    stages: int = 1
    lines: list[str] = field(default_factory=list)

    def rides(self, stage: int) -> list[Ride]:
        missing = [layer for layer, key in self.keys.items() if stored.load_samples(self.root, key) is None]
        if not missing or not self.lead:
            return []
        sampler = AtlasSampler(self.model, missing, self.request.positions, self.seed,
                               sources.chosen_photos(len(self.source), self.request.positions, self.samples, self.seed))
        return [Ride("activation-atlas samples", self.source, sampler, lambda report: self._store(sampler, report))]

    def _store(self, sampler: AtlasSampler, report: PassReport) -> None:
        for layer in sampler.layers:
            arrays = sampler.arrays(layer)
            if not arrays:
                raise AtlasError(f"--activation-atlas {self.source.root}: no readable photo gave a sample")
            meta = {"model": self.model.name, "fingerprint": self.model.fingerprint, "layer": layer,
                    "dataset": str(self.source.root), "images": report.images, "skipped": len(report.skipped),
                    "names": {str(i): self.source.name(int(i)) for i in np.unique(arrays["images"])}}
            stored.store_samples(self.root, self.keys[layer], arrays, meta)

    def finish(self) -> None:
        """Lay out, bin and render the icons of every atlas layer (and the class atlas)."""
        if not self.lead:
            return
        wanted = [(layer, None) for layer in self.layers]
        if self.request.class_index is not None:
            wanted.append((self.layers[-1], self.request.class_index))
        for layer, class_index in wanted:
            record, summary = build_atlas(self, layer, class_index)
            icons = sum(len(level["cells"]) for level in record["levels"])
            what = f"class {class_index} atlas" if class_index is not None else "activation atlas"
            self.lines.append(
                f"{what} of {layer}: {record['samples']} samples of {record['images']} photos, "
                f"layout {record['layout']}, grids {'/'.join(str(l['size']) for l in record['levels'])}, "
                f"{icons} icons (rendered {summary.rendered}, from cache {summary.cached}"
                f"{', failed ' + str(len(summary.failed)) if summary.failed else ''})")

    def summary(self) -> str | None:
        return "\n".join(self.lines) or None


def samples_key(model: Model, layer: str, source, *, positions: int, samples: int | None, seed: int,
                precision: str) -> str:
    return stored.key(kind="samples", model=model.name, weights=model.fingerprint, layer=layer,
                      dataset=source.fingerprint(), positions=positions, samples=samples,
                      seed=seed, precision=precision, size=model.input_size)


def atlas_job(model: Model, source, request: ActivationAtlasRequest, *, root: Path, runtime: Runtime,
              settings: Settings, layers: tuple[str, ...], samples: int | None = None,
              seed: int = 0) -> ActivationAtlasJob:
    for layer in layers:
        if not model.layer(layer).layout.spatial:
            raise AtlasError(f"an activation atlas needs a layer with positions; {layer} is flat")
    if request.class_index is not None:
        classes = model.layer(model.output_layer).channels
        if not 0 <= request.class_index < classes:
            raise AtlasError(f"--atlas-class {request.class_index} is out of range: {model.name} has {classes} "
                             f"classes (0-{classes - 1})")
    keys = {layer: samples_key(model, layer, source, positions=request.positions, samples=samples, seed=seed,
                               precision=runtime.precision) for layer in layers}
    return ActivationAtlasJob(model, source, request, Path(root), runtime, settings, layers, samples, seed, keys)


def job_for_build(context: DatasetContext, request: ActivationAtlasRequest) -> ActivationAtlasJob:
    """The build's activation atlas (its lead process alone makes it), folder, layers and class checked now."""
    model = context.model
    source = sources.image_folder(request.folder, model, "--activation-atlas")
    layers = atlas_layers(model, list(context.layers), request.layers)
    job = atlas_job(model, source, request, root=context.root, runtime=context.runtime, settings=context.settings,
                    layers=layers, samples=request.samples or default_samples(context.runtime),
                    seed=context.settings.seed)
    job.lead = context.lead
    return job
