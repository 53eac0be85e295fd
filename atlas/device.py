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


def resolve_precision(precision: str, device: torch.device, module: torch.nn.Module | None = None) -> str:
    """'auto' → bf16 where it is native and pays, else fp32.

    On CPU, oneDNN's bf16 grouped (depthwise) convolutions are slow: measured
    here, EfficientNet-Lite0 runs 5x slower in bf16 than fp32, while VGG16 runs
    2-3x faster. The rule is deterministic, so the choice (part of the cache
    key) never flips between runs.
    """
    if precision != "auto":
        return precision
    if not supports_bf16(device):
        return "fp32"
    if device.type == "cpu" and module is not None and _has_grouped_conv(module):
        return "fp32"
    return "bf16"


def _has_grouped_conv(module: torch.nn.Module) -> bool:
    return any(isinstance(m, torch.nn.Conv2d) and m.groups > 1 for m in module.modules())


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


def default_batch_size(device: torch.device, size: int) -> int:
    """A starting batch size; on CUDA an out-of-memory error halves it and retries.

    On CUDA, scale with free memory at a rough 60 MB per 224 px image (VGG16
    forward+backward in bf16); an out-of-memory error halves it. On CPU a
    handful of images already saturates the cores; more only costs memory.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        per_image = 60e6 * (size / 224) ** 2
        return int(max(1, min(256, free * 0.6 // per_image)))
    return 8


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
