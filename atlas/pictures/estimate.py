"""How long a plan will take to render: a short timed warm-up of each batch group, scaled up.

Each group runs a few images for 2 and for 4 steps; the difference is the cost of a
step without the fixed set-up, which is then scaled up linearly in images and steps
(throughput per image is flat in batch size on a CPU and rises on a GPU, so on a GPU
the probes use a full batch).
"""

from __future__ import annotations

import math
import time

import torch

from ..core.batches import batches
from ..core.settings import Settings
from ..core.units import Unit
from ..engine.batching import batch_size_for
from ..engine.render import render_batch
from ..model.classifier import Model
from ..model.runtime import Runtime


def estimate_seconds(model: Model, units: list[Unit], settings: Settings, runtime: Runtime) -> float:
    """Seconds to render `units` under `settings` on `runtime`."""
    size = batch_size_for(model, units, settings, runtime)
    total = 0.0
    for group in batches(units, 1 << 30):
        probe = group[:max(1, min(len(group), size if runtime.is_cuda else 2))]
        times = []
        with runtime.weights_in_bf16(model.module):
            for steps in (2, 4):
                tick = time.perf_counter()
                render_batch(model, probe, settings.replace(steps=steps, class_steps=None), runtime)
                if runtime.is_cuda:
                    torch.cuda.synchronize(runtime.device)
                times.append(time.perf_counter() - tick)
        per_step = max(times[1] - times[0], 1e-6) / 2
        batches_needed = math.ceil(len(group) / len(probe))
        total += batches_needed * (per_step * settings.steps_for(group[0]) + max(times[0] - 2 * per_step, 0))
    return total
