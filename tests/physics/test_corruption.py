"""Corruption = operator + noise, for every family with no special case; noise only where data are."""

import numpy as np
import torch

from rsd_sci.physics.base import Corruption
from rsd_sci.physics.blur import GaussianBlur
from rsd_sci.physics.ct import ParallelBeamCT, view_mask
from rsd_sci.physics.downsample import Downsample
from rsd_sci.physics.inpaint import PixelMask
from rsd_sci.physics.mri import MRIOperator
from rsd_sci.physics.noise import GaussianNoise


def test_noise_stays_on_measured_lines_views_and_pixels():
    g = torch.Generator().manual_seed(0)
    lines = torch.zeros(2, 1, 1, 16)
    lines[..., ::4] = 1
    mri = Corruption(MRIOperator(lines), GaussianNoise(0.5))
    y = mri(torch.zeros(2, 1, 16, 16, dtype=torch.complex64), g)
    assert torch.all(y[..., 1::4] == 0) and y[..., ::4].abs().mean() > 0.3

    views = torch.from_numpy(view_mask(30, 10))
    ct = Corruption(ParallelBeamCT(16, 30, view_mask=views), GaussianNoise(0.5))
    y = ct(torch.zeros(1, 1, 16, 16), g)
    assert torch.all(y[0, 0][~views] == 0) and y[0, 0][views].std() > 0.3

    pixels = (torch.rand(1, 1, 8, 8, generator=g) > 0.5).float()
    y = Corruption(PixelMask(pixels), GaussianNoise(0.5))(torch.zeros(1, 1, 8, 8), g)
    assert torch.all(y[pixels == 0] == 0)


def test_blur_then_downsample_then_noise_composes():
    op = Downsample(2) @ GaussianBlur(5, 1.0)
    y = Corruption(op, GaussianNoise(torch.tensor([0.0, 0.1])))(torch.ones(2, 1, 8, 8))
    assert y.shape == (2, 1, 4, 4)
    # per-sample sigma: sample 0 is noiseless; away from the zero-padded border a blurred constant stays 1
    np.testing.assert_allclose(y[0, 0, 1:3, 1:3].numpy(), 1.0, rtol=1e-5)
    assert y[1].std() > 0.02
