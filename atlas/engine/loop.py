"""The steps of one batch's optimization, eager or replayed from a CUDA graph.

A batch repeats one step, with the same tensor shapes, for hundreds of steps.
On CUDA the step (image, views, forward, objective, backward, optimizer) is
captured once as a CUDA graph and replayed: one launch instead of hundreds of
small kernels launched one by one from Python. What changes between steps is
copied into the graph's inputs first (the step's view draws, the step size).
The first steps redirect blocked ReLU gradients, which reads a flag back to the
host, so they run eagerly; so do two warm-up steps (cuDNN picks its algorithms,
the allocator settles) before the capture. Where capture fails the batch goes on
eagerly, and a `GraphFallbackWarning` says why once per reason.

On the CPU every step is eager and this is exactly the loop it always was.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from ..model.classifier import Model, normalize
from ..model.runtime import Runtime
from ..core.settings import OPTIMIZERS, Recipe
from . import objectives, transforms
from ..model.forward import activations
from .relus import redirected_relus
from .objectives import Objective

WARM_UP = 2   # eager steps on a side stream before the capture


class GraphFallbackWarning(UserWarning):
    """A batch could not be captured as a CUDA graph and rendered eagerly."""


@dataclass
class Problem:
    """Everything one step of a batch reads, fixed for the whole batch."""
    model: Model
    to_image: Callable                 # params -> images [B, 3, H, W] in [0, 1]
    params: torch.Tensor               # the parameters being optimized (fp32)
    recipe: Recipe
    view_params: torch.Tensor          # [B, steps, views, P] every step's view draws
    noise: torch.Tensor | None         # each image's noise field, where the recipe adds noise
    measure: Objective                 # the units' score, one per view
    spread: Objective | None           # the diversity term, when copies are pushed apart
    sign: float
    layers: set[str]
    runtime: Runtime                   # device, precision, the image side's dtype, CUDA graphs


_warned: set[str] = set()


def _warn_once(reason: str) -> None:
    if reason not in _warned:
        _warned.add(reason)
        warnings.warn(f"rendering without CUDA graphs: {reason}", GraphFallbackWarning, stacklevel=3)


def _step(problem: Problem, views: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
    """One step: the score of every view (detached), after the optimizer moved."""
    recipe, per_image = problem.recipe, problem.recipe.views
    image = problem.to_image(problem.params, problem.runtime.image_dtype)
    # Views are resampled to a side the model's input rule allows (ViT: exactly 224).
    x = normalize(problem.model, transforms.apply(recipe, image, views, problem.noise))
    x = x.contiguous(memory_format=torch.channels_last)
    with problem.runtime.autocast():
        acts = activations(problem.model, x, problem.layers)
    score = problem.measure(acts)
    goal = problem.sign * score if problem.spread is None else problem.sign * score + problem.spread(acts)
    if recipe.smoothness:
        goal = goal - recipe.smoothness * objectives.total_variation(image).repeat_interleave(per_image)
    # Each image's goal is the mean over its views.
    (-goal.sum() / per_image).backward()
    optimizer.step()
    return score.detach()


def make_optimizer(recipe: Recipe, params: torch.Tensor, lr: float, capturable: bool) -> torch.optim.Optimizer:
    kind = getattr(torch.optim, OPTIMIZERS[recipe.optimizer])
    if not capturable:
        return kind([params], lr=lr)
    # A graph replays the step size it read at capture: it must live in a tensor the loop updates.
    return kind([params], lr=torch.tensor(lr, device=params.device), capturable=True)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    group = optimizer.param_groups[0]
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)
    else:
        group["lr"] = lr


def optimize(problem: Problem, rates: list[float], redirect_steps: int) -> torch.Tensor:
    """Run every step; returns the curve [steps, images]: each image's mean score over its views."""
    params, steps = problem.params, len(rates)
    per_image = problem.recipe.views
    images = params.shape[0]
    graphs = problem.runtime.cuda_graphs
    optimizer = make_optimizer(problem.recipe, params, rates[0], graphs)
    curve = torch.zeros(steps, images, device=params.device)
    graph = static_views = static_score = None
    capture_at = redirect_steps + WARM_UP if graphs else steps
    side = torch.cuda.Stream(params.device) if graphs else None
    for step in range(steps):
        set_lr(optimizer, rates[step])
        views = problem.view_params[:, step]
        if graph is not None:
            static_views.copy_(views)
            graph.replay()
            score = static_score
        elif step == capture_at:
            graph, static_views, static_score = _capture(problem, optimizer, views)
            if graph is not None:
                graph.replay()
                score = static_score
            else:
                capture_at, side = steps, None
                optimizer.zero_grad(set_to_none=True)
                score = _step(problem, views, optimizer)
        else:
            optimizer.zero_grad(set_to_none=True)
            warming = side is not None and step >= redirect_steps
            if warming:   # warm-up steps run on a side stream, as graph capture wants
                side.wait_stream(torch.cuda.current_stream(params.device))
            with torch.cuda.stream(side) if warming else contextlib.nullcontext(), \
                    redirected_relus(problem.model.module, step < redirect_steps):
                score = _step(problem, views, optimizer)
            if warming:
                torch.cuda.current_stream(params.device).wait_stream(side)
        curve[step] = score.view(images, per_image).mean(1)
    return curve


def _capture(problem: Problem, optimizer, views: torch.Tensor):
    """(graph, its views input, its score output), or (None, None, None) with a warning."""
    static_views = views.clone()
    optimizer.zero_grad(set_to_none=True)
    # The eager steps' activations sit freed in the allocator's cache; hand them back so the
    # graph's own memory pool can take them (the batch was sized for one step's memory).
    torch.cuda.synchronize(problem.params.device)
    torch.cuda.empty_cache()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            static_score = _step(problem, static_views, optimizer)
    except Exception as err:   # capture refuses host syncs, CPU tensors, some kernels: never fatal
        reason = (str(err).splitlines() or [type(err).__name__])[0][:200]
        _warn_once(reason)
        torch.cuda.synchronize(problem.params.device)
        return None, None, None
    return graph, static_views, static_score
