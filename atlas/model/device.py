"""Every decision that depends on the hardware, in one place.

Which device to run on, whether bf16 autocast pays there, how many images fit
in one batch, and holding frozen weights in bf16. The rest of the code takes a
`torch.device` and a precision and never asks the hardware itself.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

import torch
from torch import nn

from ..core.errors import AtlasError
from ..core.settings import Settings


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when present (the local rank's GPU under torchrun), else CPU."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise AtlasError("--device cuda was asked for but no CUDA GPU is available; use --device cpu or auto")
        if name == "cuda":
            name = f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    elif name != "cpu":
        raise AtlasError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise AtlasError(f"unknown device {name!r}: {err}") from None
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise AtlasError(f"{name} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    if device.type == "cuda":
        # A batch repeats one input shape for hundreds of steps, so letting cuDNN
        # time its algorithms once per shape pays at once: on an H200 the full
        # VGG16 atlas projects to 15.2 min with it, 20.5 min without (BENCHMARKS.md).
        torch.backends.cudnn.benchmark = True
    return device


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def resolve_precision(precision: str, device: torch.device) -> str:
    """'auto' → bf16 where the hardware computes it natively, else fp32.

    Measured on a 2-core AVX-512 BF16 CPU with a warm oneDNN primitive cache:
    VGG16 runs about 2.5x faster in bf16 than in fp32, EfficientNet-Lite0 1.6x
    at 224 px and the same at 128 px (BENCHMARKS.md). The rule depends on the
    hardware alone, so the choice (part of the cache key) never flips between
    runs on one machine.
    """
    if precision != "auto":
        return precision
    return "bf16" if supports_bf16(device) else "fp32"


def supports_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return _cpu_has_native_bf16()


@lru_cache(maxsize=1)
def _cpu_has_native_bf16() -> bool:
    # Without AVX-512 BF16 or AMX, CPU bf16 is emulated and slower than fp32.
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(device: torch.device, precision: str):
    """The autocast context for `precision` on `device` (a no-op for fp32). Its cache of cast
    weights is off: weights are held in bf16 while rendering, and a cached cast would be
    a tensor a CUDA graph could not see change."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False)


def image_dtype(device: torch.device, precision: str) -> torch.dtype:
    """What the image side (colour, sigmoid, views, normalization) computes in: bf16 on a GPU
    rendering in bf16, so the model's input needs no cast; fp32 on the CPU, where bf16
    elementwise kernels are not faster (BENCHMARKS.md, "GPU speed")."""
    chosen = os.environ.get("ATLAS_IMAGE_DTYPE")   # "fp32" or "bf16": for measuring the difference only
    if chosen in ("fp32", "bf16"):
        return torch.bfloat16 if chosen == "bf16" and precision == "bf16" else torch.float32
    return torch.bfloat16 if device.type == "cuda" and precision == "bf16" else torch.float32


def default_atlas_samples(device: torch.device) -> int:
    """Most activation-atlas samples per layer when the user names no number: the layout
    (UMAP) costs about 100 s and 2 GB at 100,000 samples on two cores and grows with
    them (BENCHMARKS.md, "Activation atlas"), and sampling costs one forward-mode pass
    per sample: a GPU machine takes the reference's 100,000, a CPU 20,000."""
    return 100_000 if device.type == "cuda" else 20_000


def use_cuda_graphs(device: torch.device) -> bool:
    """Whether batches replay their step as a CUDA graph: on CUDA unless ATLAS_CUDA_GRAPHS=0
    (a switch for measuring the difference, never for correctness)."""
    return device.type == "cuda" and os.environ.get("ATLAS_CUDA_GRAPHS", "1") != "0"


# Units in the larger of the two memory probes on CUDA (atlas.build.batch_size_for).
PROBE_UNITS = 8
# Share of free GPU memory a batch may plan to use: room for the allocator's
# fragmentation and for what the probe did not see.
MEMORY_MARGIN = 0.8
MAX_BATCH = 256


@contextlib.contextmanager
def weights_in_bf16(module: nn.Module, precision: str):
    """Within the block, hold the frozen weights of convolutions and linear layers in bf16.

    Autocast would cast them from fp32 at every step (measured: 20 % of a step
    on VGG16's classifier.6 on CPU); the cast it makes is the same rounding, so
    images do not change. Norms and buffers stay fp32 for autocast to handle, and
    so do layers inside attention blocks, whose fused kernels check dtypes. The
    fp32 tensors are put back on exit, so code that runs the model without
    autocast afterwards (dataset examples) sees it as before.
    """
    if precision != "bf16":
        yield
        return
    held = []
    for m in _castable(module):
        for p in (m.weight, getattr(m, "bias", None)):
            if p is not None and p.dtype == torch.float32 and not p.requires_grad:
                held.append((p, p.data))
                p.data = p.data.to(torch.bfloat16)
    try:
        yield
    finally:
        for p, original in held:
            p.data = original


def _castable(module: nn.Module):
    inside_attention = {id(sub) for m in module.modules() if isinstance(m, nn.MultiheadAttention)
                        for sub in m.modules()}
    return [m for m in module.modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and id(m) not in inside_attention]


CPU_VIEWS_PER_BATCH = 16


def default_batch_size(device: torch.device, settings: Settings) -> int:
    """Images per batch without a measurement: on CPU 16 views (measured on 2 cores,
    EfficientNet-Lite0 at 128 px: 10-22 % faster per unit than 8 views, level with
    32; BENCHMARKS.md); on CUDA a cautious 60 MB per 224 px view (VGG16
    forward+backward in bf16) when no probe can be run."""
    views = settings.recipe_spec.views
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return batch_size_from_memory(free, 60e6 * (settings.size / 224) ** 2, views)
    return max(1, CPU_VIEWS_PER_BATCH // views)


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
    return batch_size_from_memory(free_bytes, per_view, views_per_image, fixed)


def batch_size_from_memory(free_bytes: float, bytes_per_view: float, views_per_image: int,
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


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
