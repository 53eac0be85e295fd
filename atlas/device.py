"""Every decision that depends on the hardware, in one place.

Which device to run on, whether bf16 autocast pays there, and how many images
fit in one batch. The rest of the code takes a `torch.device` and a precision
and never asks the hardware itself.
"""

from __future__ import annotations

import os
from functools import lru_cache

import torch

from .errors import AtlasError
from .settings import Settings


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
    """The autocast context for `precision` on `device` (a no-op for fp32)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def default_batch_size(device: torch.device, settings: Settings) -> int:
    """A starting number of units per batch; each unit's image is seen through
    its recipe's number of views at every step.

    On CUDA, scale with free memory at a rough 60 MB per 224 px view (VGG16
    forward+backward in bf16); an out-of-memory error halves it and retries.
    On CPU a handful of views already saturates the cores; more only costs
    memory.
    """
    views = settings.recipe_spec.views
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        per_view = 60e6 * (settings.size / 224) ** 2
        return int(max(1, min(256, free * 0.6 // (per_view * views))))
    return max(1, 8 // views)


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
