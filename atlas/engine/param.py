"""Image parameterizations: a tensor to optimize and the function to an RGB image.

Each parameterization gives `init(generator) -> Tensor` for one image and
`to_image(params, dtype) -> images in [0, 1]`, batched over the first dimension,
so a batch is the concatenation of independently seeded images. Parameters and
the Fourier transform stay in fp32; `dtype` is what the rest of the image side
computes in (the colour matrix and the sigmoid): bf16 on a GPU rendering in bf16,
so the image reaches the model with no cast in between.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import torch

# Lucid's colour correlation square root (ImageNet), applied so the optimizer
# moves in a decorrelated colour space; normalized by its largest column norm.
COLOR_CORRELATION_SVD_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                                           [0.27, 0.00, -0.05],
                                           [0.27, -0.09, 0.03]])
COLOR_CORRELATION = COLOR_CORRELATION_SVD_SQRT / COLOR_CORRELATION_SVD_SQRT.norm(dim=0).max()

INIT_SD = 0.01


@dataclass(frozen=True)
class Parameterization:
    shape: tuple[int, ...]  # of one image's parameters
    to_image: Callable[..., torch.Tensor]   # (params, dtype=torch.float32) -> images
    init_sd: float = INIT_SD  # of the normal draw that starts every parameter

    def init(self, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(self.shape, generator=generator) * self.init_sd


def make(kind: str, size: int, decay_power: float = 1.0, device="cpu") -> Parameterization:
    if kind == "fourier":
        return fourier(size, size, decay_power, device)
    if kind == "pixel":
        return pixel(size, size)
    if kind == "phase":
        return phase(size, size, decay_power, device)
    raise ValueError(f"unknown parameterization {kind!r}")


def pixel(h: int, w: int) -> Parameterization:
    """The naive method: every pixel free, squashed by a sigmoid. Kept for comparison."""
    return Parameterization((3, h, w), lambda params, dtype=torch.float32: torch.sigmoid(params.to(dtype)))


def fourier(h: int, w: int, decay_power: float = 1.0, device="cpu") -> Parameterization:
    """A spectrum whose frequencies are scaled down as 1/f**decay, so low
    frequencies dominate and the optimizer does not fill the image with noise."""
    scale = _decay(h, w, decay_power).to(device)

    def to_image(spectrum: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        spectrum = torch.view_as_complex(spectrum.contiguous()) * scale
        return _to_rgb((torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / 4.0).to(dtype))

    return Parameterization((3, h, w // 2 + 1, 2), to_image)


# Standard deviation of a phase-only image before the sigmoid: about the contrast
# of a photograph (pixel sd ~0.2 in [0, 1]).
PHASE_IMAGE_SD = 1.6


def phase(h: int, w: int, decay_power: float = 1.0, device="cpu") -> Parameterization:
    """Magnitude-constrained Fourier (MACO, Fel et al. 2023): every frequency's
    magnitude is fixed to a natural image's 1/f**decay and only its phase is
    optimized, so the image keeps a photograph's spectrum (no high-frequency
    noise can grow) and the optimizer can only move structure around."""
    magnitude = _decay(h, w, decay_power)
    # Parseval (orthonormal transform): the columns the half spectrum stands in for count twice.
    counted = torch.full((w // 2 + 1,), 2.0)
    counted[0] = 1.0
    if w % 2 == 0:
        counted[-1] = 1.0
    magnitude[0, 0] = 0.0  # the mean stays grey; the sigmoid's centre
    energy = (magnitude ** 2 * counted).sum() / (h * w)
    magnitude = (magnitude * PHASE_IMAGE_SD / energy.sqrt()).to(device)

    def to_image(phases: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        spectrum = torch.polar(magnitude.expand_as(phases), phases)
        return _to_rgb(torch.fft.irfft2(spectrum, s=(h, w), norm="ortho").to(dtype))

    # Phases start uniform (a normal with sd pi wraps around the circle nearly evenly).
    return Parameterization((3, h, w // 2 + 1), to_image, init_sd=math.pi)


def _decay(h: int, w: int, decay_power: float) -> torch.Tensor:
    """[h, w // 2 + 1] amplitudes 1/f**decay of the half spectrum (f floored at one cycle per image)."""
    freqs = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
    return 1.0 / freqs.clamp(min=1.0 / max(h, w)) ** decay_power


def _to_rgb(decorrelated: torch.Tensor) -> torch.Tensor:
    """Decorrelated colour channels to RGB in [0, 1]."""
    image = torch.einsum("bchw,dc->bdhw", decorrelated, _colour(decorrelated.device, decorrelated.dtype))
    return torch.sigmoid(image)


@functools.lru_cache(maxsize=16)
def _colour(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The colour matrix on a device, made once: a step copies nothing from the host
    (which a CUDA graph could not replay). An ordinary tensor even under inference mode."""
    with torch.inference_mode(False):
        return COLOR_CORRELATION.to(device, dtype)
