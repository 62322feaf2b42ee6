"""Blur, convolution, pixel masks and down-sampling against scipy / scikit-image, and composition."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from skimage.transform import downscale_local_mean

from rsd_sci.physics.base import Corruption
from rsd_sci.physics.blur import Convolution, GaussianBlur, gaussian_kernel
from rsd_sci.physics.downsample import Downsample
from rsd_sci.physics.inpaint import PixelMask, bernoulli_mask, further_pixel_mask
from rsd_sci.physics.noise import GaussianNoise


def _x(*shape, seed=0) -> torch.Tensor:
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _per_plane(fn, a: np.ndarray) -> np.ndarray:
    return np.stack([fn(p) for p in a.reshape(-1, *a.shape[-2:])]).reshape(a.shape)


@pytest.mark.parametrize("size,std", [(9, 1.5), (5, 0.7), (1, 1.0)])
def test_gaussian_blur_matches_scipy_gaussian_filter(size, std):
    x = _x(2, 3, 17, 13)
    ours = GaussianBlur(size, std).A(x).numpy()
    ref = _per_plane(lambda p: ndi.gaussian_filter(p, std, mode="constant", radius=size // 2), x.numpy())
    np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_asymmetric_convolution_is_scipy_correlate():
    kernel = _x(3, 5, seed=1)
    x = _x(2, 2, 11, 9)
    ref = _per_plane(lambda p: ndi.correlate(p, kernel.numpy(), mode="constant"), x.numpy())
    np.testing.assert_allclose(Convolution(kernel).A(x).numpy(), ref, atol=1e-12)
    # adjoint = correlation with the flipped kernel (scipy.ndimage.convolve), zero padding
    y = _x(2, 2, 11, 9, seed=2)
    ref_adj = _per_plane(lambda p: ndi.convolve(p, kernel.numpy(), mode="constant"), y.numpy())
    np.testing.assert_allclose(Convolution(kernel).A_adjoint(y).numpy(), ref_adj, atol=1e-12)


def test_blur_complex_and_any_channels():
    op = GaussianBlur(7, 1.2)
    z = torch.complex(_x(1, 4, 10, 12), _x(1, 4, 10, 12, seed=5))
    out = op.A(z)
    assert out.dtype == torch.complex128
    ref = _per_plane(lambda p: ndi.gaussian_filter(p, 1.2, mode="constant", radius=3), z.real.numpy())
    np.testing.assert_allclose(out.real.numpy(), ref, atol=1e-12)
    assert op.A(_x(5, 5)).shape == (5, 5)  # a bare (H, W) image works too
    assert float(gaussian_kernel(9, 1.5).sum()) == pytest.approx(1.0, abs=1e-14)
    for bad in [(4, 1.0), (0, 1.0), (5, 0.0)]:
        with pytest.raises(ValueError):
            GaussianBlur(*bad)


def test_pixel_mask_and_bernoulli_masks():
    g = torch.Generator().manual_seed(0)
    m = bernoulli_mask((4, 1, 64, 64), p_missing=0.7, generator=g)
    assert m.dtype == torch.float32 and set(m.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(m.mean()) - 0.3) < 4 * (0.3 * 0.7 / m.numel()) ** 0.5  # binomial: 4 standard errors
    x = _x(4, 2, 64, 64)
    torch.testing.assert_close(PixelMask(m).A(x), x * m.double())
    torch.testing.assert_close(PixelMask(m).A_adjoint(x), x * m.double())
    again = bernoulli_mask((4, 1, 64, 64), 0.7, torch.Generator().manual_seed(0))
    assert torch.equal(m, again)
    thin = further_pixel_mask(m, 0.1, torch.Generator().manual_seed(1))
    assert not ((thin == 1) & (m == 0)).any()
    kept = float(thin.sum() / m.sum())
    assert abs(kept - 0.9) < 4 * (0.09 / float(m.sum())) ** 0.5
    with pytest.raises(ValueError):
        bernoulli_mask((2, 2), 1.0)
    with pytest.raises(ValueError):
        further_pixel_mask(m, -0.1)


@pytest.mark.parametrize("factor", [2, 3])
def test_downsample_matches_skimage(factor):
    x = _x(2, 3, 12, 18)
    ref = np.stack([downscale_local_mean(p, (factor, factor)) for p in x.numpy().reshape(-1, 12, 18)])
    ref = ref.reshape(2, 3, 12 // factor, 18 // factor)
    op = Downsample(factor)
    np.testing.assert_allclose(op.A(x).numpy(), ref, atol=1e-12)
    y = _x(2, 3, 12 // factor, 18 // factor, seed=3)
    up = np.kron(y.numpy(), np.ones((factor, factor))) / factor**2
    np.testing.assert_allclose(op.A_adjoint(y).numpy(), up, atol=1e-14)
    with pytest.raises(ValueError):
        op.A(_x(1, 1, 13, 18))


def test_composition_needs_no_special_case():
    x = _x(2, 1, 16, 16)
    blur = GaussianBlur(5, 1.0)
    noisy = Corruption(blur, GaussianNoise(0.1))(x, generator=torch.Generator().manual_seed(0))
    residual = (noisy - blur.A(x)).flatten()
    assert abs(float(residual.std()) - 0.1) < 0.01 and abs(float(residual.mean())) < 0.01
    sr = Downsample(2) @ blur  # blur, then decimate: super-resolution
    ref = np.stack([downscale_local_mean(ndi.gaussian_filter(p, 1.0, mode="constant", radius=2), (2, 2))
                    for p in x.numpy().reshape(-1, 16, 16)]).reshape(2, 1, 8, 8)
    np.testing.assert_allclose(sr.A(x).numpy(), ref, atol=1e-12)
    low = GaussianBlur(3, 0.8) @ Downsample(2)
    assert low.A(x).shape == (2, 1, 8, 8) and low.A_adjoint(low.A(x)).shape == x.shape
    measured = Corruption(low, GaussianNoise(torch.tensor([0.0, 0.5])))(x)
    torch.testing.assert_close(measured[0], low.A(x)[0])  # σ = 0 for the first sample
    assert not torch.allclose(measured[1], low.A(x)[1])


def test_autocast_keeps_physics_in_float32():
    x = torch.randn(1, 2, 8, 8).bfloat16()
    mask = torch.ones(1, 1, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for op in (GaussianBlur(3, 1.0), Downsample(2), PixelMask(mask)):
            assert op.A(x).dtype == torch.float32
            assert op.A_adjoint(op.A(x)).dtype == torch.float32


@pytest.mark.cuda
def test_image_operators_on_cuda():
    x = torch.randn(2, 3, 16, 16)
    mask = bernoulli_mask((2, 1, 16, 16), 0.5, torch.Generator().manual_seed(0))
    for op in (GaussianBlur(5, 1.0), Downsample(2), PixelMask(mask), Downsample(2) @ GaussianBlur(3, 0.8)):
        ref = op.A(x)
        torch.testing.assert_close(op.to("cuda").A(x.cuda()).cpu(), ref, rtol=1e-5, atol=1e-5)
