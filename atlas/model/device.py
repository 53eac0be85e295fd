"""What the hardware is and can do: the device, native bf16, memory errors, and the two
mechanisms a precision needs (autocast, frozen weights held in bf16).

`atlas.model.runtime` asks these questions once per build and records the answers;
the rest of atlas reads the record.
"""

from __future__ import annotations

import contextlib
import os
from functools import lru_cache

import torch
from torch import nn

from ..core.errors import AtlasError


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


def default_atlas_samples(device: torch.device) -> int:
    """Most activation-atlas samples per layer when the user names no number: the layout
    (UMAP) costs about 100 s and 2 GB at 100,000 samples on two cores and grows with
    them (BENCHMARKS.md, "Activation atlas"), and sampling costs one forward-mode pass
    per sample: a GPU machine takes the reference's 100,000, a CPU 20,000."""
    return 100_000 if device.type == "cuda" else 20_000


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


def is_out_of_memory(err: BaseException) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
