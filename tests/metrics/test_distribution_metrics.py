"""Distribution distances: exact 1-D W_1 vs scipy, sliced and patch Wasserstein, radial power spectra."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from rsd_sci.metrics.distribution import (
    patch_sliced_wasserstein,
    power_spectrum_distance,
    radial_power_spectrum,
    sliced_wasserstein,
    wasserstein_1d,
)


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth_images(n: int, seed: int, size: int = 64) -> torch.Tensor:
    """(n, 1, size, size) low-pass filtered white noise (Gaussian in k-space, width size/8), unit std."""
    noise = torch.randn(n, 1, size, size, generator=_g(seed), dtype=torch.float64)
    f = torch.fft.fftfreq(size, dtype=torch.float64) * size
    lowpass = torch.exp(-(f[:, None] ** 2 + f[None, :] ** 2) / (2 * (size / 8) ** 2))
    x = torch.fft.ifft2(torch.fft.fft2(noise) * lowpass).real
    return x / x.std()


@pytest.mark.parametrize("n, m", [(7, 13), (50, 31), (1, 5), (40, 40)])
def test_wasserstein_1d_matches_scipy(n, m):
    rng = np.random.default_rng(n * 100 + m)
    u, v = rng.normal(size=n), rng.exponential(size=m) + 0.3
    got = float(wasserstein_1d(torch.from_numpy(u), torch.from_numpy(v)))
    assert got == pytest.approx(scipy.stats.wasserstein_distance(u, v), rel=1e-6)


def test_wasserstein_1d_batches_over_leading_dims():
    u, v = torch.randn(3, 11, generator=_g(1)), torch.randn(3, 6, generator=_g(2))
    batched = wasserstein_1d(u, v)
    assert batched.shape == (3,)
    for i in range(3):
        assert float(batched[i]) == pytest.approx(scipy.stats.wasserstein_distance(u[i], v[i]), rel=1e-6)


def test_sliced_wasserstein_self_zero_and_shift_invariance():
    a = torch.randn(300, 8, generator=_g(1), dtype=torch.float64)
    b = torch.randn(200, 8, generator=_g(2), dtype=torch.float64) + 0.5
    assert sliced_wasserstein(a, a) == 0.0
    shift = torch.randn(8, generator=_g(3), dtype=torch.float64) * 5
    assert sliced_wasserstein(a + shift, b + shift) == pytest.approx(sliced_wasserstein(a, b), rel=1e-9)
    assert sliced_wasserstein(a, b) == sliced_wasserstein(a, b)  # fixed default seed: deterministic


def test_sliced_wasserstein_gaussian_shift_matches_analytic():
    d, n = 8, 2000  # |m| ≥ 2 keeps the O(n^{-1/2}) finite-sample bias of W_1 small
    e_abs_theta1 = math.gamma(d / 2) / (math.sqrt(math.pi) * math.gamma((d + 1) / 2))  # E|θ_1| on S^{D−1}
    a = torch.randn(n, d, generator=_g(1), dtype=torch.float64)
    b = torch.randn(n, d, generator=_g(2), dtype=torch.float64)
    direction = torch.randn(d, generator=_g(3), dtype=torch.float64)
    direction /= direction.norm()
    dists = []
    for size in (2.0, 4.0, 8.0):
        sw = sliced_wasserstein(a, b + size * direction)
        assert sw == pytest.approx(size * e_abs_theta1, rel=0.1)
        dists.append(sw)
    assert dists[0] < dists[1] < dists[2]


def test_sliced_wasserstein_rejects_mismatched_dims():
    with pytest.raises(ValueError, match="same D"):
        sliced_wasserstein(torch.zeros(5, 3), torch.zeros(5, 4))


def test_patch_sw_identical_sets_zero_and_deterministic():
    x = _smooth_images(8, seed=1)
    out = patch_sliced_wasserstein(x, x, n_patches=512, n_projections=32)
    assert out == {"scales": [0.0, 0.0, 0.0], "mean": 0.0}
    y = _smooth_images(6, seed=2)
    first = patch_sliced_wasserstein(x, y, n_patches=512, n_projections=32, seed=5)
    assert first == patch_sliced_wasserstein(x, y, n_patches=512, n_projections=32, seed=5)
    assert first["mean"] == pytest.approx(sum(first["scales"]) / 3)


def test_patch_sw_noise_is_farther_than_a_fresh_draw():
    x, fresh = _smooth_images(32, seed=1), _smooth_images(32, seed=2)
    noisy = x + torch.randn(x.shape, generator=_g(3), dtype=torch.float64)  # noise as strong as the signal
    kw = dict(n_patches=2048, n_projections=64)
    d_fresh = patch_sliced_wasserstein(x, fresh, **kw)
    d_noisy = patch_sliced_wasserstein(x, noisy, **kw)
    assert d_noisy["mean"] > 2 * d_fresh["mean"]
    assert d_noisy["scales"][0] > d_fresh["scales"][0]


def test_patch_sw_stops_scales_at_patch_size_and_validates():
    x = torch.rand(2, 1, 20, 24, generator=_g(1))
    assert len(patch_sliced_wasserstein(x, x, scales=5, n_patches=64, n_projections=8)["scales"]) == 2
    with pytest.raises(ValueError, match="same C, H, W"):
        patch_sliced_wasserstein(x, torch.rand(2, 2, 20, 24))
    with pytest.raises(ValueError, match="smaller than"):
        patch_sliced_wasserstein(x, x, patch=21)


def test_radial_power_spectrum_of_white_noise_is_flat():
    s = 0.7
    x = s * torch.randn(128, 1, 64, 64, generator=_g(1))
    p = radial_power_spectrum(x)
    assert p.shape == (33,) and p.dtype == torch.float64
    mid = p[8:25] / s**2
    assert float((mid - 1).abs().max()) < 0.08
    assert float(mid.mean()) == pytest.approx(1.0, rel=0.02)


def test_radial_power_spectrum_matches_brute_force():
    x = np.random.default_rng(0).normal(size=(2, 1, 9, 10))
    k = np.fft.fftshift(np.fft.fft2(x, norm="ortho"), axes=(-2, -1))
    power = (np.abs(k) ** 2).mean(axis=(0, 1))
    n_rings = min(9, 10) // 2 + 1
    sums, counts = np.zeros(n_rings), np.zeros(n_rings)
    for i in range(9):
        for j in range(10):
            r = int(round(math.hypot(i - 9 // 2, j - 10 // 2)))
            if r < n_rings:
                sums[r] += power[i, j]
                counts[r] += 1
    got = radial_power_spectrum(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, sums / counts, rtol=1e-10)


def test_power_spectrum_distance_grows_with_blur():
    x = _smooth_images(8, seed=1, size=32) + 0.2 * torch.randn(8, 1, 32, 32, generator=_g(2), dtype=torch.float64)
    blur1 = F.avg_pool2d(x, 3, stride=1, padding=1)
    blur2 = F.avg_pool2d(blur1, 3, stride=1, padding=1)
    assert power_spectrum_distance(x, x) == 0.0
    assert 0.0 < power_spectrum_distance(x, blur1) < power_spectrum_distance(x, blur2)
    with pytest.raises(ValueError, match="same C, H, W"):
        power_spectrum_distance(x, x[..., :16])


@pytest.mark.cuda
def test_cuda_matches_cpu():
    x, y = _smooth_images(4, seed=1), _smooth_images(5, seed=2)
    kw = dict(n_patches=256, n_projections=16)
    cpu = patch_sliced_wasserstein(x, y, **kw)
    gpu = patch_sliced_wasserstein(x.cuda(), y.cuda(), **kw)
    np.testing.assert_allclose(gpu["scales"], cpu["scales"], rtol=1e-9)
    assert power_spectrum_distance(x.cuda(), y.cuda()) == pytest.approx(power_spectrum_distance(x, y), rel=1e-9)
