"""Image parameterizations: a tensor to optimize and the function to an RGB image.

Each parameterization gives `init(generator) -> Tensor` for one image and
`to_image(params) -> images in [0, 1]`, batched over the first dimension, so a
batch is the concatenation of independently seeded images.
"""

from __future__ import annotations

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
    to_image: Callable[[torch.Tensor], torch.Tensor]

    def init(self, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(self.shape, generator=generator) * INIT_SD


def make(kind: str, size: int, decay_power: float = 1.0, device="cpu") -> Parameterization:
    if kind == "fourier":
        return fourier(size, size, decay_power, device)
    if kind == "pixel":
        return pixel(size, size)
    raise ValueError(f"unknown parameterization {kind!r}")


def pixel(h: int, w: int) -> Parameterization:
    """The naive method: every pixel free, squashed by a sigmoid. Kept for comparison."""
    return Parameterization((3, h, w), torch.sigmoid)


def fourier(h: int, w: int, decay_power: float = 1.0, device="cpu") -> Parameterization:
    """A spectrum whose frequencies are scaled down as 1/f**decay, so low
    frequencies dominate and the optimizer does not fill the image with noise."""
    freqs = torch.sqrt(torch.fft.fftfreq(h)[:, None] ** 2 + torch.fft.rfftfreq(w)[None, :] ** 2)
    scale = (1.0 / freqs.clamp(min=1.0 / max(h, w)) ** decay_power).to(device)
    color = COLOR_CORRELATION.to(device)

    def to_image(spectrum: torch.Tensor) -> torch.Tensor:
        spectrum = torch.view_as_complex(spectrum.contiguous()) * scale
        image = torch.fft.irfft2(spectrum, s=(h, w), norm="ortho") / 4.0
        image = torch.einsum("bchw,dc->bdhw", image, color)
        return torch.sigmoid(image)

    return Parameterization((3, h, w // 2 + 1, 2), to_image)
