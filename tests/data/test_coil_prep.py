"""Coil preparation: covariance from the background, whitening, SVD compression, against known truth.

Simulated multi-coil data: an object in the middle of the field of view (inside the middle 3/4 along H,
as with x2 readout oversampling), smooth complex coil maps, and complex noise n = L z with a known random
Hermitian positive definite covariance Sigma = L L^H (z white, E|z|^2 = 1).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import linalg, ndimage

from rsd_sci.data.coil_prep import coil_compress, noise_covariance, prewhiten, whitening_matrix

H = W = 256
N_COILS = 8


def fft2c(x):
    """Centred orthonormal FFT (fastMRI's fft2c), written here independently of the library."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def complex_white(rng, shape):
    """Complex white noise with E|z|^2 = 1 (std 1/sqrt(2) per real component)."""
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)


def object_image():
    """A textured ellipse filling 60 % of H and 70 % of W around the centre; exactly zero outside."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    inside = (yy / 0.6) ** 2 + (xx / 0.7) ** 2 <= 1
    texture = 1.0 + 0.3 * np.cos(6 * xx) * np.sin(4 * yy)
    return inside * texture * np.exp(1j * 0.5 * xx)


def coil_maps(n_coils):
    """Smooth complex Gaussian sensitivities centred around a circle, (n_coils, H, W)."""
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    angles = 2 * np.pi * np.arange(n_coils) / n_coils
    maps = [
        np.exp(-((yy - 0.8 * np.sin(a)) ** 2 + (xx - 0.8 * np.cos(a)) ** 2) / 0.8) * np.exp(1j * (a + xx))
        for a in angles
    ]
    return np.stack(maps)


def random_covariance(rng, n, level):
    """Random Hermitian positive definite (n, n) matrix with diagonal of order level^2."""
    a = rng.standard_normal((n, n)) + 1j * rng.standard_normal((n, n))
    return level**2 * (a @ a.conj().T / (2 * n) + 0.2 * np.eye(n))


def rel_fro(estimate, truth):
    return np.linalg.norm(estimate - truth) / np.linalg.norm(truth)


@pytest.fixture(scope="module")
def noisy_kspace():
    rng = np.random.default_rng(1)
    sigma = random_covariance(rng, N_COILS, level=0.05)
    noise = np.linalg.cholesky(sigma) @ complex_white(rng, (N_COILS, H * W))
    k = fft2c(coil_maps(N_COILS) * object_image()) + noise.reshape(N_COILS, H, W)
    return k.astype(np.complex64), sigma


@pytest.mark.parametrize("region", ["auto", "oversampling"])
def test_covariance_matches_truth(noisy_kspace, region):
    k, sigma = noisy_kspace
    est = noise_covariance(k, region=region)
    assert est.shape == (N_COILS, N_COILS)
    np.testing.assert_allclose(est, est.conj().T, atol=0)
    assert rel_fro(est, sigma) < 0.10


def test_zero_padded_edges_are_corrected(noisy_kspace):
    """Zero-padded k-space edges (20 % of the columns) lower image noise by the sampled fraction."""
    k, sigma = noisy_kspace
    padded = k.copy()
    padded[..., : W // 10] = 0
    padded[..., W - W // 10 :] = 0
    assert rel_fro(noise_covariance(padded, region="auto"), sigma) < 0.10
    assert rel_fro(noise_covariance(padded, region="oversampling"), sigma) < 0.10


def test_undersampled_data_use_kspace_corners():
    """Line-undersampled k-space (aliasing in the background): "auto" takes the k-space corners.

    The object is smoothed here: the corner rule assumes negligible signal at the highest frequencies.
    """
    rng = np.random.default_rng(6)
    sigma = random_covariance(rng, N_COILS, level=0.05)
    obj = object_image()
    obj = ndimage.gaussian_filter(obj.real, 1.5) + 1j * ndimage.gaussian_filter(obj.imag, 1.5)
    noise = (np.linalg.cholesky(sigma) @ complex_white(rng, (N_COILS, H * W))).reshape(N_COILS, H, W)
    k = fft2c(coil_maps(N_COILS) * obj) + noise
    lines = rng.random(W) < 0.4
    lines[W // 2 - 10 : W // 2 + 10] = True
    undersampled = (k * lines).astype(np.complex64)
    assert rel_fro(noise_covariance(undersampled, region="auto"), sigma) < 0.15
    # lines along W alias along W only: the outer eighths along H stay signal-free (fraction-corrected)
    assert rel_fro(noise_covariance(undersampled, region="oversampling"), sigma) < 0.10
    assert rel_fro(noise_covariance(k.astype(np.complex64), region="kspace"), sigma) < 0.10
    with pytest.raises(ValueError):
        noise_covariance(k * (np.abs(np.arange(W) - W // 2) < 8), region="kspace")  # no corner samples


def test_auto_region_unbiased_on_pure_noise():
    """Darkest-pixel selection must not pick low-noise pixels: each coil's variance stays unbiased."""
    rng = np.random.default_rng(2)
    level = 0.3
    k = level * complex_white(rng, (4, H, W))
    diag = np.real(np.diag(noise_covariance(k, region="auto")))
    np.testing.assert_allclose(diag, level**2, rtol=0.06)


def test_whitening_matrix_properties(noisy_kspace):
    _, sigma = noisy_kspace
    w = whitening_matrix(sigma)
    np.testing.assert_allclose(w @ sigma @ w.conj().T, np.eye(N_COILS), atol=1e-8)
    # independent reference: the inverse of scipy's principal matrix square root
    np.testing.assert_allclose(w, np.linalg.inv(linalg.sqrtm(sigma)), rtol=1e-6, atol=1e-6 * np.abs(w).max())


def test_prewhitened_covariance_is_identity(noisy_kspace):
    k, _ = noisy_kspace
    kw = prewhiten(k, whitening_matrix(noise_covariance(k)))
    assert kw.dtype == np.complex64 and kw.shape == k.shape
    est = noise_covariance(kw, region="oversampling")
    assert rel_fro(est, np.eye(N_COILS)) < 0.10
    # unit complex variance = 1/sqrt(2) per real component, in every coil
    np.testing.assert_allclose(np.real(np.diag(est)), 1.0, rtol=0.1)


def test_prewhiten_is_coil_axis_matmul():
    rng = np.random.default_rng(3)
    k = complex_white(rng, (3, 4, 5))
    w = rng.standard_normal((3, 3)) + 1j * rng.standard_normal((3, 3))
    out = prewhiten(k, w)
    for c in range(3):
        ref = sum(w[c, d] * k[d] for d in range(3))
        np.testing.assert_allclose(out[c], ref, rtol=1e-5, atol=1e-5)


def test_whitening_rejects_bad_input():
    with pytest.raises(ValueError):
        whitening_matrix(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        whitening_matrix(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError):
        noise_covariance(np.zeros((4, 8, 8), np.complex64), region="corners")


def low_rank_kspace(rng, rank, noise=0.0):
    """k-space whose coil vectors live in a known rank-dimensional subspace, plus optional white noise."""
    basis = coil_maps(rank) * object_image()  # (rank, H, W) distinct virtual-coil images
    mixing = rng.standard_normal((N_COILS, rank)) + 1j * rng.standard_normal((N_COILS, rank))
    images = np.tensordot(mixing, basis, axes=(1, 0))
    k = fft2c(images) + noise * complex_white(rng, (N_COILS, H, W))
    return k.astype(np.complex64), mixing


def test_compression_keeps_energy_of_low_rank_data():
    rng = np.random.default_rng(4)
    k, mixing = low_rank_kspace(rng, rank=4, noise=1e-3)
    kv, m = coil_compress(k, 4)
    assert kv.shape == (4, H, W) and m.shape == (4, N_COILS) and kv.dtype == np.complex64
    kept = np.sum(np.abs(kv) ** 2) / np.sum(np.abs(k) ** 2)
    assert kept > 0.999
    np.testing.assert_allclose(m @ m.conj().T, np.eye(4), atol=1e-10)
    # the compression subspace is the true coil subspace (projection of the mixing columns is lossless)
    proj = m.conj().T @ (m @ mixing)
    assert np.linalg.norm(proj - mixing) / np.linalg.norm(mixing) < 1e-3


def test_full_compression_is_unitary():
    rng = np.random.default_rng(5)
    k, _ = low_rank_kspace(rng, rank=4, noise=0.1)
    kv, m = coil_compress(k, N_COILS)
    np.testing.assert_allclose(m @ m.conj().T, np.eye(N_COILS), atol=1e-10)
    np.testing.assert_allclose(m.conj().T @ m, np.eye(N_COILS), atol=1e-10)
    np.testing.assert_allclose(np.sum(np.abs(kv) ** 2), np.sum(np.abs(k) ** 2), rtol=1e-5)
    back = np.tensordot(m.conj().T, kv, axes=(1, 0))
    np.testing.assert_allclose(back, k, atol=1e-4 * np.abs(k).max())


def test_whitened_noise_stays_white_after_compression(noisy_kspace):
    k, _ = noisy_kspace
    kw = prewhiten(k, whitening_matrix(noise_covariance(k)))
    kv, _ = coil_compress(kw, 4)
    est = noise_covariance(kv, region="oversampling")
    assert rel_fro(est, np.eye(4)) < 0.10


@pytest.mark.parametrize("n_virtual", [0, N_COILS + 1, 2.0])
def test_compression_rejects_bad_count(n_virtual):
    k = np.zeros((N_COILS, 8, 8), np.complex64)
    with pytest.raises(ValueError):
        coil_compress(k, n_virtual)
