"""The optimization loop: a batch of units in, one image per unit (or several) out.

Each image in a batch optimizes its own unit. In eval mode the images do not
interact, so a batch of 64 channels costs one forward and one backward pass per
step (over all the views its recipe takes of each image), and a unit renders
the same inside a batch as alone: its initial image and its random views come
from a generator seeded by the unit itself.
"""

from __future__ import annotations

import math
import time
import zlib
from dataclasses import dataclass

import numpy as np
import torch

from ..core.batches import batch_key
from ..core.settings import Settings
from ..core.units import Unit
from ..model.classifier import Model, normalize
from ..model.forward import activations
from ..model.runtime import Runtime
from . import objectives, param, transforms
from .builders import build
from .context import Context
from .loop import Problem, optimize


@dataclass(frozen=True)
class Rendered:
    """What rendering one unit produced."""
    unit: Unit
    images: tuple[np.ndarray, ...]  # uint8 HxWx3, one per diversity copy
    curve: tuple[float, ...]  # the unit's objective at every step (mean over its images)
    final_objectives: tuple[float, ...]  # on each untransformed final image
    class_probability: float | None  # for class units: mean softmax probability of the class
    seconds: float
    error: str | None = None  # set when the optimization diverged (NaN/Inf)
    # The model's top classes on the untransformed final image(s): (class, probability),
    # most probable first; probabilities averaged over a unit's images.
    labels: tuple[tuple[int, float], ...] = ()

    @property
    def final_objective(self) -> float:
        return float(np.mean(self.final_objectives))


TOP_LABELS = 5


def image_seed(settings: Settings, unit: Unit, copy: int) -> int:
    """The seed of one image: a function of the unit alone, never of its batch."""
    text = f"{settings.seed}|{unit.layer}|{unit.index}|{unit.objective}|{unit.negative}|{unit.diversity}|{copy}"
    if unit.params:   # only then: units without parameters keep the seeds (and images) they had
        text += f"|{unit.params!r}"
    if unit.picture:  # likewise for a unit's first picture
        text += f"|picture {unit.picture}"
    return zlib.crc32(text.encode())


def diversity_layer(model: Model, unit: Unit) -> str:
    """Where images of one unit are pushed apart: the unit's own layer if it is a
    conv layer or a token / channels-last map, else (class units, vectors) the
    deepest spatial layer of the default selection: a convnet's deepest conv, a
    transformer's last block."""
    layer = model.layer(unit.layer)
    if layer.kind == "conv" or layer.layout.channels_last:
        return unit.layer
    spatial = [l for l in model.layers if l.layout.spatial and l.name != model.output_layer]
    return max([l for l in spatial if l.default] or spatial, key=lambda l: l.position).name


def render_batch(model: Model, units: list[Unit], settings: Settings, runtime: Runtime, *,
                 photos: dict | None = None) -> list[Rendered]:
    """Optimize one image per unit and copy; all units must share a batch key. `photos`
    (digest -> image) feed objectives that imitate a photo (caricatures)."""
    if len({batch_key(u) for u in units}) != 1:
        raise ValueError("a batch must hold units of one layer, objective, sign and diversity")
    settings = settings.for_unit(units[0])   # a batch is of one kind: its steps
    if settings.precision != runtime.precision:
        raise ValueError(f"the settings render in {settings.precision}, the runtime computes in {runtime.precision}")
    device = runtime.device
    start = time.perf_counter()
    first, copies = units[0], units[0].diversity
    items = [(u, c) for u in units for c in range(copies)]

    image_param = param.make(settings.param, settings.size, settings.decay_power, device)
    recipe = settings.recipe_for(first)
    generators = [torch.Generator().manual_seed(image_seed(settings, u, c)) for u, c in items]
    params = torch.stack([image_param.init(g) for g in generators]).to(device).requires_grad_()
    view_params = torch.stack([transforms.draw(recipe, settings.steps, g) for g in generators]).to(device)
    fields = [transforms.noise_field(recipe, settings.size, g) for g in generators]
    noise = torch.stack(fields).to(device) if fields[0] is not None else None
    per_image = recipe.views

    context = Context(model, runtime, photos or {})
    measure = build([u for u, _ in items for _ in range(per_image)], context)
    layers = set(measure.layers)
    spread = None
    if copies > 1:
        # Copies of a unit are pushed apart; views of one image are not.
        groups = torch.arange(len(units), device=device).repeat_interleave(copies * per_image)
        images_of = torch.arange(len(items), device=device).repeat_interleave(per_image)
        spread = settings.diversity_weight * objectives.diversity(diversity_layer(model, first), groups, images_of)
        layers |= spread.layers

    problem = Problem(model, image_param.to_image, params, recipe, view_params, noise, measure, spread,
                      -1.0 if first.negative else 1.0, layers, runtime)
    curve = optimize(problem, learning_rates(settings, first), settings.redirect_steps)

    with torch.no_grad():
        images = image_param.to_image(params)
        # One pass to the logits scores the unit and says what the model calls the image.
        wanted = set(measure.layers) | {model.output_layer}
        with runtime.autocast():
            acts = activations(model, normalize(model, images).contiguous(memory_format=torch.channels_last), wanted)
        final = build([u for u, _ in items], context)(acts)
        probs = torch.softmax(acts[model.output_layer].float(), dim=1)
        probability = None
        if first.kind.is_class:
            index = torch.tensor([u.index for u, _ in items], device=probs.device)
            probability = probs[torch.arange(len(items), device=probs.device), index]

    return _results(units, copies, images, curve, final, probability, probs, time.perf_counter() - start)


def top_labels(probs: torch.Tensor, k: int = TOP_LABELS) -> tuple[tuple[int, float], ...]:
    """The k most probable classes of a probability vector, as (class, probability)."""
    values, indices = probs.topk(min(k, probs.shape[-1]))
    return tuple((int(i), round(float(v), 5)) for v, i in zip(values, indices))


def learning_rates(settings: Settings, unit: Unit) -> list[float]:
    """The step size of every step for `unit`: constant, or a cosine from lr down to lr / 10."""
    lr = settings.lr_for(unit)
    if settings.recipe_for(unit).lr_schedule == "constant":
        return [lr] * settings.steps
    last = max(1, settings.steps - 1)
    return [lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / last))) for step in range(settings.steps)]


def _results(units, copies, images, curve, final, probability, probs, seconds) -> list[Rendered]:
    """Move everything to the host once and split it per unit."""
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    curve = curve.float().cpu().numpy()
    final = final.float().cpu().numpy()
    probability = probability.float().cpu().numpy() if probability is not None else None
    probs = probs.float().cpu()
    finite = np.isfinite(curve).all(0) & np.isfinite(final) & torch.isfinite(images).flatten(1).all(1).cpu().numpy()
    results = []
    for n, unit in enumerate(units):
        rows = slice(n * copies, (n + 1) * copies)
        ok = bool(finite[rows].all())
        results.append(Rendered(
            unit=unit,
            images=tuple(pixels[rows]),
            curve=tuple(float(v) for v in curve[:, rows].mean(1)),
            final_objectives=tuple(float(v) for v in final[rows]),
            class_probability=float(probability[rows].mean()) if probability is not None else None,
            seconds=seconds * copies / (len(units) * copies),
            error=None if ok else "the optimization diverged (NaN or Inf)",
            labels=top_labels(probs[rows].mean(0)) if ok else (),
        ))
    return results
