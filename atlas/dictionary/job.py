"""The dictionary-features feature of a build: per layer, a sparse dictionary of its activations
learned from a photo folder, and every feature shown as a unit beside the channels.

    stage 0  every process samples vectors of its share of the photos (`VectorSampler`) and
             stores them: shards and torchrun ranks each collect a part
    stage 1  the lead merges the parts (a shard that finds others missing stops and says
             so), learns each layer's dictionary (`learn`: held out, seeds, checkpoints),
             then reads the photos again for each feature's top examples (`FeatureTop`) and
             where on each it fires (`heat`)
    finish   each feature's picture rendered (the direction of its atom) and the layer's
             record stored for the site (`atlas.store.dictionary.LayerDictionary`)

Every step is stored under a key of what made it: sampled vectors by the model, weights,
layer, folder and budget; a dictionary by those and its shape and training; so changing
`k` trains again from the same vectors, and a killed build resumes where it stopped.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..activation_atlas.job import atlas_layers
from ..core.errors import AtlasError
from ..core.text import plural
from ..data import sources
from ..data.passes import DatasetContext, Ride
from ..data.stream import PassReport
from ..examples.top import crop_examples
from ..model.classifier import normalize
from ..model.forward import activations
from ..pictures.render import render_plan
from ..plan import work as plans
from ..store import dictionary as stored
from . import heat
from .collect import VectorSampler, per_photo
from .features import POOLING, FeatureTop, PhotoEmbedding, coherences, feature_units, strongest
from .label import StoredDictionary
from .learn import Learned, learn, silent, too_few
from .sae import DictionaryShape, SparseDictionary
from .train import Training

MULTIPLE = 8                  # features per channel when the user names no size
DEFAULT_K = 32
GPU_VECTORS, CPU_VECTORS = 1_000_000, 200_000   # most vectors per layer when the user names no number
SEED_OFFSET = 7001            # photo choice and held-out split: a seed of their own, apart from the renders'


@dataclass(frozen=True)
class DictionaryRequest:
    """What a build asks of dictionary features."""
    folder: Path
    layers: str | None = None         # names or globs; None: the activation atlas's layers
    size: int | None = None           # features per layer; None: `multiple` x its channels
    multiple: int = MULTIPLE
    k: int = DEFAULT_K                # codes per position
    kind: str = "topk"                # topk, batchtopk or archetypal (atlas.dictionary.sae)
    vectors: int | None = None        # most vectors sampled per layer; None: as the device suits
    holdout: float = 0.1              # share of the photos whose vectors only measure
    epochs: int = 20
    seeds: int = 2                    # the second only measures stability
    examples: int = 9
    pictures: int | None = None       # features rendered per layer, most frequent first; None: every live one


@dataclass(frozen=True)
class LayerWork:
    """What one layer's dictionary is made from, and the keys of every stored step."""
    layer: str
    positions: int | None             # per photo (None: all)
    chosen: set[int] | None           # photos that give vectors (None: all)
    shape: DictionaryShape
    training: Training
    vectors_key: str
    trained_key: str
    record_key: str


@dataclass
class DictionaryJob:
    context: DatasetContext
    source: sources.Source
    request: DictionaryRequest
    work: list[LayerWork]
    stages: int = 2
    learned: dict[str, Learned] = field(default_factory=dict)
    metas: dict[str, dict] = field(default_factory=dict)        # images read and skipped, per layer
    tops: dict[str, FeatureTop] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    def _todo(self) -> list[LayerWork]:
        return [w for w in self.work if stored.load(self.context.root, w.record_key) is None]

    def rides(self, stage: int) -> list[Ride]:
        return self._collect() if stage == 0 else self._learn()

    def _collect(self) -> list[Ride]:
        root, shard = self.context.root, self.context.shard
        wanted = [w for w in self._todo() if stored.load_part(root, w.vectors_key, shard) is None]
        if not wanted:
            return []
        sampler = VectorSampler({w.layer: w.positions for w in wanted}, seed=self.context.settings.seed + SEED_OFFSET,
                                chosen={w.layer: w.chosen for w in wanted})

        def store(report: PassReport) -> None:
            for w in wanted:
                stored.store_part(root, w.vectors_key, shard, arrays=sampler.arrays(w.layer),
                                  meta={"images": report.images, "skipped": len(report.skipped)})
        return [Ride("dictionary vectors", self.source, sampler, store, None if shard == (1, 1) else shard)]

    def _learn(self) -> list[Ride]:
        """The lead learns every layer whose vectors are all in, then asks for the read that
        finds its features' examples."""
        if not self.context.lead:
            return []
        for w in self._todo():
            merged = stored.merged_parts(self.context.root, w.vectors_key, self.context.shard[1])
            if merged is None:
                self.waiting.append(w.layer)
                continue
            meta, arrays = merged
            if not arrays:
                raise AtlasError(f"--features {self.source.root}: no readable photo gave {w.layer} a vector")
            # The held-out split and the measures need the vectors even when every seed is stored.
            self.learned[w.layer] = learn(arrays["vectors"], arrays["images"], w.shape, w.training, layer=w.layer,
                                          holdout=self.request.holdout, seeds=self.request.seeds,
                                          device=self.context.runtime.device, root=self.context.root,
                                          key=w.trained_key, progress=self.context.progress or silent)
            self.metas[w.layer] = meta
        if not self.learned:
            return []
        model, device = self.context.model, self.context.runtime.device
        embedding = PhotoEmbedding(model.output_layer, model.layer(model.output_layer).channels, len(self.source),
                                   device, seed=self.context.settings.seed + SEED_OFFSET)
        top = FeatureTop({layer: found.dictionary for layer, found in self.learned.items()}, self.request.examples,
                         device, embedding)
        return [Ride("dictionary examples", self.source, top, lambda report: self.tops.update({l: top for l in top.layers}))]

    def dictionaries(self) -> dict[str, StoredDictionary]:
        """Every layer's dictionary this process has by now (the first seed's, the one the site
        shows): learned in this build, or stored by an earlier one."""
        found = {}
        for w in self.work:
            if w.layer in self.learned:
                found[w.layer] = StoredDictionary(w.trained_key, self.learned[w.layer].dictionary)
            elif (weights := stored.load_trained(self.context.root, w.trained_key, w.training.seed)) is not None:
                found[w.layer] = StoredDictionary(w.trained_key, SparseDictionary.from_weights(w.shape, weights[1]))
        return found

    def finish(self) -> None:
        """Render every learned layer's feature pictures and store its record for the site."""
        for w in self.work:
            if w.layer in self.learned and w.layer in self.tops:
                self._record(w, self.learned[w.layer], self.tops[w.layer])

    def _examples(self, layer: str, top: FeatureTop) -> list[list[dict]]:
        """Per feature, the photos it fires on of its top ones: each cropped where its code
        is strongest, with the heatmap of where in the crop it fires."""
        context, model = self.context, self.context.model
        values, ids, positions, maps = top.best[layer]
        _, crops = crop_examples(model, self.source, layer, (values, ids, positions), grid=top.grids[layer],
                                 device=context.runtime.device,
                                 store_crop=lambda data: stored.store_crop(context.root, data))
        boxes = np.array([[example.box for example in row] for row in crops])
        heats = heat.over_crops(maps, boxes, heat.coarse_grid(top.grids[layer]), model.input_size)
        return [[{**asdict(example), "heat": stored.encode_heat(heats[f, rank])}
                 for rank, example in enumerate(row) if example.value > 0] for f, row in enumerate(crops)]

    def _record(self, w: LayerWork, found: Learned, top: FeatureTop) -> None:
        context, model = self.context, self.context.model
        directions = found.dictionary.directions().numpy()
        units = feature_units(w.layer, directions, found.frequency, self.request.pictures)
        plan = plans.make_plan(model, units, context.settings, context.root)
        summary = render_plan(model, plan, context.settings, context.runtime, root=context.root)
        examples = self._examples(w.layer, top)
        pictures = {unit.index: plan.keys[unit] for unit in units}
        alike = coherences(top.best[w.layer], top.embedding.centred())
        features = [stored.Feature(f, round(float(found.frequency[f]), 6), pictures.get(f), strongest(directions[f]),
                                   examples[f], None if np.isnan(alike[f]) else round(float(alike[f]), 4))
                    for f in range(len(directions))]
        meta = self.metas.get(w.layer, {})
        stored.store(context.root, w.record_key, stored.LayerDictionary(
            model.name, model.fingerprint, w.layer, str(self.source.root), int(meta.get("images", 0)),
            int(meta.get("skipped", 0)), w.shape.as_dict(), w.training.as_dict(), found.train_vectors,
            found.quality.as_dict(), found.stability, POOLING, features, trained=w.trained_key))
        q = found.quality
        self.lines.append(
            f"dictionary of {w.layer}: {w.shape.size} features (k={w.shape.k}, {w.shape.kind}) from "
            f"{found.train_vectors:,} vectors; held out: R² {q.r2:.3f}, L0 {q.l0:.1f}, dead {q.dead:.1%}"
            + (f", stability {found.stability:.3f}" if found.stability is not None else "")
            + f"; {plural(len(units), 'picture')} (rendered {summary.rendered}, from cache {summary.cached})")

    def summary(self) -> str | None:
        lines = list(self.lines)
        if self.waiting:
            k, n = self.context.shard
            lines.append(f"dictionary features: shard {k}/{n} stored its vectors; {len(self.waiting)} layers wait "
                         "for the other shards: run the same command again once every shard has finished")
        if not lines and self.context.lead and self.work:
            lines.append(f"dictionary features of {plural(len(self.work), 'layer')}: from cache")
        return "\n".join(lines) or None


def parse_size(text: str | None) -> tuple[int | None, int]:
    """--dictionary-size: "896" (features) or "4x" (a multiple of the layer's channels) ->
    (size, multiple); None keeps the default multiple."""
    if text is None:
        return None, MULTIPLE
    value = str(text).strip().lower()
    number = value[:-1] if value.endswith("x") else value
    if not number.isdigit() or int(number) < (1 if value.endswith("x") else 2):
        raise AtlasError(f"--dictionary-size must be a number of features or a multiple such as 4x, got {text!r}")
    return (None, int(number)) if value.endswith("x") else (int(number), MULTIPLE)


def grids(context: DatasetContext, layers: tuple[str, ...]) -> dict[str, int]:
    """Positions of each layer's map at the model's input size (one forward pass of a blank image)."""
    model, side = context.model, context.model.input_size
    with torch.no_grad():
        x = torch.zeros(1, 3, side, side, device=context.runtime.device)
        maps = activations(model, normalize(model, x), set(layers))
    return {layer: int(maps[layer][0, 0].numel()) for layer in layers}


def job_for_build(context: DatasetContext, request: DictionaryRequest) -> DictionaryJob:
    """The build's dictionaries: folder, layers and sizes checked now, before any rendering."""
    model = context.model
    if request.seeds > 1 and importlib.util.find_spec("scipy") is None:
        raise AtlasError("--features: the stability of two seeds needs scipy: pip install 'atlas[features]'")
    source = sources.image_folder(request.folder, model, "--features")
    layers = atlas_layers(model, list(context.layers), request.layers)
    budget = request.vectors or (GPU_VECTORS if context.runtime.is_cuda else CPU_VECTORS)
    seed = context.settings.seed + SEED_OFFSET
    dataset, precision = source.fingerprint(), context.runtime.precision
    training = Training(epochs=request.epochs, seed=context.settings.seed)
    work = []
    for layer, grid in grids(context, layers).items():
        channels = model.layer(layer).channels
        size = request.size or request.multiple * channels
        try:
            shape = DictionaryShape(channels, size, request.k, request.kind)
        except ValueError as err:
            raise AtlasError(f"--features: {layer}: {err}") from None
        positions = per_photo(len(source), grid, budget)
        chosen = sources.chosen_photos(len(source), positions or grid, budget, seed)
        expected = int((len(chosen) if chosen else len(source)) * (positions or grid) * (1 - request.holdout))
        problem = too_few(layer, expected, size)
        if problem:
            raise AtlasError(problem)
        vectors_key = stored.key(kind="vectors", model=model.name, weights=model.fingerprint, layer=layer,
                                 dataset=dataset, budget=budget, seed=seed, precision=precision, size=model.input_size)
        trained_key = stored.key(kind="trained", vectors=vectors_key, shape=shape.as_dict(), training=training.as_dict(),
                                 holdout=request.holdout)
        record_key = stored.key(kind="record", record_version=stored.RECORD_VERSION, trained=trained_key,
                                seeds=request.seeds, examples=request.examples,
                                pictures=request.pictures, settings=context.settings.as_dict())
        work.append(LayerWork(layer, positions, chosen, shape, training, vectors_key, trained_key, record_key))
    return DictionaryJob(context, source, request, work)
