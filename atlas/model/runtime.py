"""How a build runs on its hardware, decided once and passed down as one record.

`resolve_runtime` asks the hardware everything a build needs to know (which device,
whether bf16 is native there, what the image side computes in, whether batches
replay as CUDA graphs) and returns a frozen `Runtime`. The pipeline resolves it at
the start; the engine, the dataset passes and every feature read it and never ask
the hardware again. How many images a batch holds is `atlas.engine.batching`'s.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from . import device as devices


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str                  # "fp32" or "bf16": the model's arithmetic (the settings hold it too)
    image_dtype: torch.dtype        # what the image side (colour, views, normalization) computes in
    cuda_graphs: bool               # whether each batch's step is captured once and replayed
    batch_size: int | None = None   # images per render batch; None: decided per plan (engine.batching)
    photos_per_batch: int = 32      # photos per batch of a dataset pass
    workers: int | None = None      # photo-decoding processes; None: every core but one

    @property
    def where(self) -> str:
        """The device as messages and cache entries name it."""
        return devices.describe(self.device)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self):
        """The autocast context of this runtime's precision (a no-op for fp32)."""
        return devices.autocast(self.device, self.precision)

    def weights_in_bf16(self, module):
        """Within the block, the module's frozen weights held in bf16 when computing in bf16."""
        return devices.weights_in_bf16(module, self.precision)


def resolve_runtime(device: str | torch.device = "auto", precision: str = "auto", *, batch_size: int | None = None,
                    photos_per_batch: int | None = None, workers: int | None = None) -> Runtime:
    """Every hardware decision of a build: 'auto' device (CUDA when present), 'auto' precision
    (bf16 where native), the image side's dtype and CUDA graphs follow from those."""
    target = device if isinstance(device, torch.device) else devices.resolve_device(device)
    chosen = devices.resolve_precision(precision, target)
    return Runtime(target, chosen, image_dtype(target, chosen), use_cuda_graphs(target), batch_size,
                   photos_per_batch or 32, workers)


def image_dtype(device: torch.device, precision: str) -> torch.dtype:
    """What the image side (colour, sigmoid, views, normalization) computes in: bf16 on a GPU
    rendering in bf16, so the model's input needs no cast; fp32 on the CPU, where bf16
    elementwise kernels are not faster (BENCHMARKS.md, "GPU speed")."""
    chosen = os.environ.get("ATLAS_IMAGE_DTYPE")   # "fp32" or "bf16": for measuring the difference only
    if chosen in ("fp32", "bf16"):
        return torch.bfloat16 if chosen == "bf16" and precision == "bf16" else torch.float32
    return torch.bfloat16 if device.type == "cuda" and precision == "bf16" else torch.float32


def use_cuda_graphs(device: torch.device) -> bool:
    """Whether batches replay their step as a CUDA graph: on CUDA unless ATLAS_CUDA_GRAPHS=0
    (a switch for measuring the difference, never for correctness)."""
    return device.type == "cuda" and os.environ.get("ATLAS_CUDA_GRAPHS", "1") != "0"
