"""What `atlas build` is asked, and what it means once a preset fills the gaps.

`BuildRequest` is the one record the CLI, the benchmarks and a notebook fill in.
None means "from the preset" (or the default). The features that read photos
each take a request record of their own, defined in their folder (`examples`,
`dissection`, `activation_atlas`, `dictionary`); caricatures too.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from ..activation_atlas.job import ActivationAtlasRequest
from ..caricatures.job import CaricaturesRequest
from ..core.errors import AtlasError
from ..core.parse import parse_shard
from ..core.settings import Settings
from ..dictionary.job import DictionaryRequest
from ..dissection.job import DissectionRequest
from ..examples.job import ExamplesRequest
from ..model.classifier import Model
from ..model.runtime import Runtime
from ..plan.presets import preset as preset_named
from ..plan.selection import Selection
from ..store.files import check_writable


@dataclass(frozen=True)
class BuildRequest:
    """Everything `atlas build` is asked; None means "from the preset" (or the default)."""

    model: str
    weights: str = "default"
    preset: str = "full"
    # what to render (see Selection)
    layers: str | None = None
    channels: int | None = None
    classes: str | None = None
    units: tuple[str, ...] = ()
    objective: str = "channel"
    class_objective: str = "logit"
    negative: bool = False
    diversity: int = 1
    directions: int = 0  # random directions per selected layer (seeded by `seed`)
    pictures: int = 1    # pictures of each unit, from as many seeds
    # how to render it (see Settings); precision "auto" is resolved on the device
    size: int | None = None
    steps: int | None = None          # every unit's; the two below set one kind each
    channel_steps: int | None = None  # every unit but class units
    class_steps: int | None = None
    lr: float | None = None
    param: str | None = None
    recipe: str | None = None
    precision: str = "auto"
    seed: int | None = None
    # where and how fast: none of these changes an image
    device: str = "auto"
    batch_size: int | None = None   # images per render batch (None: from free memory, or the CPU default)
    workers: int | None = None      # photo-decoding processes of the dataset passes
    background_store: bool = True
    cache_dir: Path = Path("cache")
    out: Path = Path("site")
    shard: str | None = None
    dry_run: bool = False
    write_site: bool = True
    site_budget: int | None = None  # bytes; warn when the site is larger (default 1 GB)
    # steps after the render
    connections: bool = True        # expanded weights between rendered layers (cached per layer pair)
    caricatures: CaricaturesRequest | None = None
    # features that read photos (atlas.data.passes), one request each
    examples: ExamplesRequest | None = None
    dissection: DissectionRequest | None = None
    activation_atlas: ActivationAtlasRequest | None = None
    dictionary: DictionaryRequest | None = None

    @property
    def shard_of(self) -> tuple[int, int]:
        """(K, N) of --shard K/N, parsed once (`normalized` checks it)."""
        return parse_shard(self.shard)


PATHS = ("cache_dir", "out")


def normalized(request: BuildRequest) -> BuildRequest:
    """Paths as Paths and unit lists split, whatever the caller passed; a malformed shard fails here."""
    parse_shard(request.shard)
    changes = {f.name: Path(getattr(request, f.name)) for f in fields(request)
               if f.name in PATHS and not isinstance(getattr(request, f.name), Path)}
    units = tuple(s.strip() for spec in request.units for s in str(spec).replace(" ", ",").split(",") if s.strip())
    if units != request.units:
        changes["units"] = units
    return replace(request, **changes) if changes else request


def selection_of(request: BuildRequest) -> Selection:
    """The request's selection, with the preset filling what the user left out."""
    chosen = preset_named(request.preset)
    units = request.units or ((chosen["units"],) if "units" in chosen else ())
    return Selection(
        layers=_pick(request.layers, chosen, "layers"), channels=_pick(request.channels, chosen, "channels"),
        classes=_pick(request.classes, chosen, "classes", "all"), units=tuple(units),
        objective=request.objective, class_objective=request.class_objective,
        negative=request.negative, diversity=request.diversity,
        directions=request.directions, directions_seed=request.seed or 0, pictures=request.pictures)


def settings_of(request: BuildRequest, runtime: Runtime, model: Model | None = None) -> Settings:
    """The request's render settings in the runtime's precision. With `model`, a picture
    side it can never take is an error naming its input rule."""
    chosen = preset_named(request.preset)
    size = _pick(request.size, chosen, "size")
    if model is not None and size is not None and not model.spec.rule.free:
        model.spec.check_picture(size, model.name)  # else Settings' own range check speaks
    classes = _first(request.class_steps, request.steps, chosen.get("steps"))
    others = _first(request.channel_steps, request.steps, chosen.get("channel_steps"), chosen.get("steps"))
    given = {"size": size, "steps": others, "class_steps": classes if classes != others else None,
             "lr": request.lr, "param": request.param, "seed": request.seed,
             "recipe": _pick(request.recipe, chosen, "recipe")}
    return Settings(**{key: value for key, value in given.items() if value is not None}, precision=runtime.precision)


def _first(*values):
    """The first value that is not None (0 is a value: Settings says what is wrong with it)."""
    return next((value for value in values if value is not None), None)


def _pick(value, chosen: dict, key: str, default=None):
    return value if value is not None else chosen.get(key, default)


def check_request(request: BuildRequest) -> None:
    """Everything that can be checked before loading a model: bad input fails in a second.
    Dataset folders are opened once the model is loaded, still before any rendering."""
    preset_named(request.preset)
    check_writable(request.cache_dir, "cache dir")
    if request.write_site and not request.dry_run:
        check_writable(request.out, "output dir")
    if request.dissection is not None and not 0 < request.dissection.quantile < 0.5:
        raise AtlasError(f"--dissect-quantile must be between 0 and 0.5, got {request.dissection.quantile}")


def caricatures_of(request: BuildRequest) -> CaricaturesRequest | None:
    """The caricatures a build renders: those asked for, else of the examples folder's first photos."""
    if request.caricatures is not None or request.examples is None:
        return request.caricatures
    return CaricaturesRequest(request.examples.folder, option="--examples")
