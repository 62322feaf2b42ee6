"""Noise-level estimators against known Gaussian noise, and the image rule against scikit-image.

A smooth phantom (blurred ellipses, max 1, smooth phase) gets complex white noise of known std per real
component sigma = 0.01, 0.05, 0.1 of its maximum, added in k-space (centred orthonormal FFT, so the same
sigma holds in image space).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.restoration import estimate_sigma

from rsd_sci.data.noise_level import estimate_sigma_image, estimate_sigma_kspace

H, W = 256, 224
LEVELS = [0.01, 0.05, 0.1]


def fft2c(x):
    """Centred orthonormal FFT (fastMRI's fft2c), written here independently of the library."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def ifft2c(k):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def phantom():
    """Blurred ellipses with a smooth phase, |x| max 1, (H, W) complex."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    img = 0.8 * ((yy / 0.85) ** 2 + (xx / 0.65) ** 2 <= 1)
    img -= 0.6 * ((yy / 0.75) ** 2 + (xx / 0.55) ** 2 <= 1)
    img += 0.5 * (((yy - 0.2) / 0.3) ** 2 + ((xx + 0.2) / 0.15) ** 2 <= 1)
    img += 0.3 * (((yy + 0.3) / 0.1) ** 2 + ((xx - 0.25) / 0.2) ** 2 <= 1)
    img = ndimage.gaussian_filter(img, 1.5)
    img /= np.abs(img).max()
    return img * np.exp(1j * (0.8 * xx + 0.4 * yy**2))


def noisy_kspace(level, n_coils=2, seed=0):
    """Multi-coil k-space (n_coils, H, W) of the phantom under smooth maps + complex noise sigma=level."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    maps = np.stack([np.exp(-((xx - c) ** 2 + yy**2) / 1.5) for c in np.linspace(-0.7, 0.7, n_coils)])
    noise = rng.standard_normal((n_coils, H, W)) + 1j * rng.standard_normal((n_coils, H, W))
    return fft2c(maps * phantom()) + level * noise


def line_mask(seed=0, fraction=0.25, centre=16):
    """(W,) bool: a random quarter of the columns plus the centre lines."""
    rng = np.random.default_rng(seed)
    mask = rng.random(W) < fraction
    mask[W // 2 - centre // 2 : W // 2 + centre // 2] = True
    return mask


@pytest.mark.parametrize("level", LEVELS)
def test_kspace_estimator_fully_sampled(level):
    est = estimate_sigma_kspace(noisy_kspace(level).astype(np.complex64))
    assert abs(est / level - 1) < 0.15


@pytest.mark.parametrize("level", LEVELS)
def test_kspace_estimator_line_undersampled(level):
    mask = line_mask()
    k = (noisy_kspace(level) * mask).astype(np.complex64)
    assert abs(estimate_sigma_kspace(k, mask=mask) / level - 1) < 0.15
    # without a mask the exact zeros of unsampled lines are excluded as well
    assert abs(estimate_sigma_kspace(k) / level - 1) < 0.15
    # counting the unsampled zeros as samples would be badly wrong: the mask matters
    assert estimate_sigma_kspace(k, mask=np.ones(W, bool)) < 0.5 * level


def test_kspace_estimator_zero_padded_edges():
    """Zero-padded edge columns hold no noise: the corners of the acquired box are used instead."""
    k = noisy_kspace(0.05)
    k[..., : W // 8] = 0
    k[..., W - W // 8 :] = 0
    assert abs(estimate_sigma_kspace(k) / 0.05 - 1) < 0.15


def test_kspace_estimator_needs_periphery_samples():
    mask = np.zeros(W, bool)
    mask[W // 2 - 8 : W // 2 + 8] = True
    with pytest.raises(ValueError):
        estimate_sigma_kspace(noisy_kspace(0.05) * mask, mask=mask)
    with pytest.raises(ValueError):
        estimate_sigma_kspace(noisy_kspace(0.05), mask=np.ones(W + 1, bool))


@pytest.mark.parametrize("level", LEVELS)
def test_image_estimator_real(level):
    rng = np.random.default_rng(1)
    image = np.abs(phantom()) + level * rng.standard_normal((H, W))
    est = estimate_sigma_image(image)
    assert abs(est / level - 1) < 0.15
    assert abs(est / estimate_sigma(image) - 1) < 0.10  # scikit-image's wavelet rule (db2) as reference


@pytest.mark.parametrize("level", LEVELS)
def test_image_estimator_complex(level):
    image = ifft2c(noisy_kspace(level, n_coils=1, seed=2)[0])
    est = estimate_sigma_image(image)
    assert abs(est / level - 1) < 0.15
    ref = 0.5 * (estimate_sigma(image.real) + estimate_sigma(image.imag))
    assert abs(est / ref - 1) < 0.10


def test_image_estimator_odd_shape_and_zero_noise():
    image = np.abs(phantom())[:-1, :-3]
    rng = np.random.default_rng(3)
    assert abs(estimate_sigma_image(image + 0.05 * rng.standard_normal(image.shape)) / 0.05 - 1) < 0.15
    assert estimate_sigma_image(np.ones((9, 9))) == 0.0
    with pytest.raises(ValueError):
        estimate_sigma_image(np.ones(10))
