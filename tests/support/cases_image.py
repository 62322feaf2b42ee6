"""Operator cases: image restoration (blur, convolution, pixel masks, down-sampling, compositions)."""

import torch

from tests.support.operator_checks import OperatorCase
from rsd_sci.physics.blur import Convolution, GaussianBlur
from rsd_sci.physics.downsample import Downsample
from rsd_sci.physics.inpaint import PixelMask, bernoulli_mask


def _mask(shape, p=0.5, seed=3) -> torch.Tensor:
    m = bernoulli_mask(shape, p, torch.Generator().manual_seed(seed))
    m[..., 0, 0] = 1.0  # at least one pixel kept per sample: ||A|| = 1
    return m


def _asymmetric_kernel() -> torch.Tensor:
    return torch.rand(3, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)


CASES = [
    OperatorCase("blur_gauss_k5", lambda dt: GaussianBlur(5, 1.0), (2, 3, 12, 12)),
    OperatorCase("blur_gauss_k9_complex", lambda dt: GaussianBlur(9, 1.5), (2, 1, 10, 10), complex_input=True),
    OperatorCase("conv_asymmetric_3x5", lambda dt: Convolution(_asymmetric_kernel()), (2, 2, 9, 11)),
    OperatorCase("pixel_mask", lambda dt: PixelMask(_mask((2, 1, 8, 8))), (2, 1, 8, 8), known_norm=1.0),
    OperatorCase("pixel_mask_complex_shared", lambda dt: PixelMask(_mask((1, 1, 8, 8))), (3, 2, 8, 8),
                 complex_input=True, known_norm=1.0),
    OperatorCase("downsample_x2", lambda dt: Downsample(2), (2, 1, 8, 8), known_norm=0.5),
    OperatorCase("downsample_x3_complex", lambda dt: Downsample(3), (1, 2, 9, 12), complex_input=True,
                 known_norm=1.0 / 3.0),
    OperatorCase("blur@downsample", lambda dt: GaussianBlur(3, 0.8) @ Downsample(2), (2, 1, 12, 12)),
    OperatorCase("downsample@blur", lambda dt: Downsample(2) @ GaussianBlur(5, 1.2), (2, 3, 12, 12)),
]
