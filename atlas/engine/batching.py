"""How many images a batch holds, and the loop that renders a list of units batch by batch.

The batch-size policy lives here alone: a fixed number of views on a CPU; on CUDA a
measurement (two short probes of the plan's hungriest layer, whose difference is the
memory of one more view) against free memory; and when CUDA still runs out of
memory, the batch is halved and every batch still to come is cut to the new size.
Sizes are powers of two, so a little more or less free memory on the next run cuts
the same batches (and a resumed build stores the same bytes).
"""

from __future__ import annotations

from typing import Iterator

import torch

from ..core.batches import batch_key, batches, cut
from ..core.settings import Settings
from ..core.units import Unit
from ..model import device as devices
from ..model.classifier import Model
from ..model.runtime import Runtime
from .render import Rendered, render_batch

CPU_VIEWS_PER_BATCH = 16
# Units in the larger of the two memory probes on CUDA.
PROBE_UNITS = 8
# Share of free GPU memory a batch may plan to use: room for the allocator's
# fragmentation and for what the probe did not see.
MEMORY_MARGIN = 0.8
MAX_BATCH = 256


def render(model: Model, units: list[Unit], settings: Settings, runtime: Runtime, *,
           photos: dict | None = None) -> Iterator[list[Rendered]]:
    """Render `units` batch by batch (`runtime.batch_size` images, else the default for
    the device), yielding each batch's results as it finishes.

    Frozen weights are held in bf16 while it runs, when the runtime computes in bf16.
    On CUDA out-of-memory the batch is split in two and every batch still to come is
    cut to the halved size."""
    size = runtime.batch_size or default_batch_size(runtime, settings)
    pending = batches(units, size)
    with runtime.weights_in_bf16(model.module):
        while pending:
            batch = pending.pop(0)
            try:
                results = render_batch(model, batch, settings, runtime, photos=photos)
            except RuntimeError as err:
                if not devices.is_out_of_memory(err) or len(batch) == 1:
                    raise
                devices.empty_cache(runtime.device)
                size = halved(size, batch)
                pending = [part for b in [batch] + pending for part in cut(b, size)]
                continue
            yield results


def halved(size: int, batch: list[Unit]) -> int:
    """The batch size after `batch` ran out of memory: half of what it held, rounded up."""
    return max(1, -(-min(size, len(batch) * batch[0].diversity) // 2))


def default_batch_size(runtime: Runtime, settings: Settings) -> int:
    """Images per batch without a measurement: on CPU 16 views (measured on 2 cores,
    EfficientNet-Lite0 at 128 px: 10-22 % faster per unit than 8 views, level with
    32; BENCHMARKS.md); on CUDA a cautious 60 MB per 224 px view (VGG16
    forward+backward in bf16) when no probe can be run."""
    views = settings.recipe_spec.views
    if runtime.is_cuda:
        free, _ = torch.cuda.mem_get_info(runtime.device)
        return batch_size_from_memory(free, 60e6 * (settings.size / 224) ** 2, views)
    return max(1, CPU_VIEWS_PER_BATCH // views)


def batch_size_for(model: Model, units: list[Unit], settings: Settings, runtime: Runtime) -> int:
    """Images per batch for a plan: the runtime's, else on CUDA measured by probing the
    plan's hungriest layer, else the default for the device.

    Two short probes of different batch sizes give the memory of one more view
    (their difference) apart from what any batch needs (cuDNN workspaces, the
    weights' casts); free memory then decides how many views fit."""
    if runtime.batch_size:
        return runtime.batch_size
    if not runtime.is_cuda or not units:
        return default_batch_size(runtime, settings)
    # A truncated forward keeps every activation up to its layer for the backward
    # pass, so the deepest layer of the plan needs the most memory per view.
    deepest = max(units, key=lambda u: model.layer(u.layer).position)
    group = [u for u in units if batch_key(u) == batch_key(deepest)]
    views_per_image = settings.recipe_spec.views
    probes = [group[:max(1, PROBE_UNITS // 2)], group[:PROBE_UNITS]]
    measured = [(len(probe) * deepest.diversity * views_per_image, _peak_memory(model, probe, settings, runtime))
                for probe in probes]
    free, _ = torch.cuda.mem_get_info(runtime.device)
    return batch_size_from_probes(free, measured, views_per_image)


def _peak_memory(model: Model, units: list[Unit], settings: Settings, runtime: Runtime) -> int:
    """Bytes of GPU memory that rendering `units` for two steps takes at its peak."""
    devices.empty_cache(runtime.device)
    base = torch.cuda.memory_allocated(runtime.device)
    torch.cuda.reset_peak_memory_stats(runtime.device)
    with runtime.weights_in_bf16(model.module):
        render_batch(model, units, settings.replace(steps=2, class_steps=None), runtime)
    return torch.cuda.max_memory_allocated(runtime.device) - base


def batch_size_from_probes(free_bytes: float, probes: list[tuple[int, int]], views_per_image: int) -> int:
    """Images per batch from two measured probes, (views, peak bytes) each, small then large:
    their difference is the memory of one more view, apart from what any batch needs
    (cuDNN workspaces, the weights' casts)."""
    (small_views, small_peak), (large_views, large_peak) = probes
    if large_views > small_views and large_peak > small_peak:
        per_view = (large_peak - small_peak) / (large_views - small_views)
        fixed = max(0.0, small_peak - per_view * small_views)
    else:  # one unit in the group: count everything as per-view (a conservative size)
        per_view, fixed = large_peak / large_views, 0.0
    return batch_size_from_memory(free_bytes, per_view, views_per_image, fixed_bytes=fixed)


def batch_size_from_memory(free_bytes: float, bytes_per_view: float, views_per_image: int, *,
                           fixed_bytes: float = 0.0, margin: float = MEMORY_MARGIN,
                           cap: int = MAX_BATCH) -> int:
    """How many images fit: what the margin leaves of free memory, less the fixed
    cost, divided by an image's views. Rounded down to a power of two, so a
    little more or less free memory on the next run cuts the same batches (and a
    resumed build stores the same bytes)."""
    usable = free_bytes * margin - fixed_bytes
    fits = int(usable // max(bytes_per_view * views_per_image, 1.0))
    fits = max(1, min(cap, fits))
    return 1 << (fits.bit_length() - 1)
