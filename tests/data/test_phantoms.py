"""The embedded phantoms: determinism, ranges, CT support, smooth phase, speed, and the k-space symmetry
(checked with numpy's FFT, independently of rsd_sci.physics)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from rsd_sci.data.hounsfield import MU_WATER, hu_to_mu
from rsd_sci.data.phantoms import PHASE_MAX_RAD, ct_phantoms, image_phantoms, mri_phantoms, smooth_phase


def _kspace(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _mirror(k: np.ndarray) -> np.ndarray:
    """K(−k) on the centred grid of even size: index j <-> (N − j) mod N."""
    return np.roll(np.flip(k, axis=(-2, -1)), 1, axis=(-2, -1))


@pytest.mark.parametrize("make", [mri_phantoms, ct_phantoms, image_phantoms])
def test_deterministic_and_independent_of_n(make):
    a = make(6, 32, 7)
    np.testing.assert_array_equal(a, make(6, 32, 7))
    np.testing.assert_array_equal(a[:3], make(3, 32, 7))
    assert not np.array_equal(a, make(6, 32, 8))
    assert all(not np.array_equal(a[0], a[i]) for i in range(1, 6))  # each phantom different


def test_mri_range_and_phase():
    x = mri_phantoms(8, 64, 0)
    assert x.dtype == np.complex64 and x.shape == (8, 64, 64)
    mag = np.abs(x)
    assert mag.max() <= 1.0 + 1e-5 and mag.min() >= 0.0
    assert np.all(mag.reshape(8, -1).max(axis=1) > 0.99)
    assert np.all((mag > 0.05).mean(axis=(1, 2)) > 0.25)  # the head fills a good part of the image
    assert mag[:, 0, :].max() < 1e-3 and mag[:, :, 0].max() < 1e-3  # background at the border
    inside = mag > 0.05
    phase = np.angle(x)
    assert np.all([np.ptp(phase[i][inside[i]]) > 0.1 for i in range(8)])  # the phase is not constant
    assert np.abs(phase[inside]).max() <= PHASE_MAX_RAD + 1e-5               # and mild (|φ| ≤ π/4)


def test_image_phantoms():
    x = image_phantoms(3, 32, 1)
    assert x.shape == (3, 1, 32, 32) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, 0], np.abs(mri_phantoms(3, 32, 1)))
    assert 0.0 <= x.min() and x.max() <= 1.0 + 1e-6


@pytest.mark.parametrize("kind", ["body", "head"])
def test_ct_values_and_circle(kind):
    size = 64
    x = ct_phantoms(16, size, 3, kind=kind)
    assert x.dtype == np.float32 and x.shape == (16, size, size)
    assert x.min() >= 0.0
    # skimage's circle=True criterion: zero outside the circle of radius size//2 about size//2
    c0, c1 = np.ogrid[:size, :size]
    outside = (c0 - size // 2) ** 2 + (c1 - size // 2) ** 2 > (size // 2) ** 2
    assert np.all(x[:, outside] == 0.0)
    assert np.all(x[:, 0, 0] == 0.0)
    # soft tissue (brain, mediastinum) near water at the centre, and bone (~ +1000 HU) present
    assert np.all(np.abs(x[:, size // 2, size // 2] - MU_WATER) < 0.3 * MU_WATER)
    assert x.max() > float(hu_to_mu(700.0))
    if kind == "body":  # lungs (about −800 HU) present in every slice
        lung = (x > 0.1 * MU_WATER) & (x < 0.3 * MU_WATER)
        assert np.all(lung.sum(axis=(1, 2)) > 0.05 * size * size)
    with pytest.raises(ValueError):
        ct_phantoms(1, size, 0, kind="knee")


def test_smooth_phase():
    rng = np.random.default_rng(0)
    phi = smooth_phase((64, 48), rng, order=3, max_rad=np.pi)
    assert phi.shape == (64, 48) and phi.dtype == np.float32
    assert np.pi / 2 - 1e-5 <= np.abs(phi).max() <= np.pi + 1e-5
    # smooth: neighbouring pixels differ by a small fraction of the range
    assert np.abs(np.diff(phi, axis=0)).max() < 0.5 and np.abs(np.diff(phi, axis=1)).max() < 0.5
    second = np.diff(phi, 2, axis=0)
    assert np.abs(second).max() < 0.05
    assert not np.array_equal(phi, smooth_phase((64, 48), np.random.default_rng(1)))


def test_smooth_phase_breaks_hermitian_symmetry():
    mag = np.abs(mri_phantoms(1, 64, 5)[0]).astype(np.float64)
    k_real = _kspace(mag)
    assert np.abs(k_real - np.conj(_mirror(k_real))).max() < 1e-8 * np.abs(k_real).max()
    phi = smooth_phase(mag.shape, np.random.default_rng(2))
    k = _kspace(mag * np.exp(1j * phi))
    asym = np.linalg.norm(k - np.conj(_mirror(k))) / np.linalg.norm(k)
    assert asym > 0.1   # 0.17 with the default |φ| ≤ π/4, against < 1e-8 without the phase


def test_fast_enough():
    start = time.perf_counter()
    mri_phantoms(256, 64, 0)
    assert time.perf_counter() - start < 2.5  # generous: 2-core CI; about 0.4 s here
