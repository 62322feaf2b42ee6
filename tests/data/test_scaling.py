"""Data scaling: the calibration-region RSS percentile, the CT affine map and the robust image scale."""

from __future__ import annotations

import numpy as np
import pytest

from rsd_sci.data.scaling import AffineScale, calibration_rss_scale, image_scale

H, W = 64, 48


def known_image(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, H), np.linspace(-1, 1, W), indexing="ij")
    disc = (yy**2 / 0.7 + xx**2 / 0.5 <= 1).astype(float)
    return disc * (1 + 0.2 * rng.standard_normal((H, W))) * np.exp(1j * xx)


def fft2c(x):
    """Centred orthonormal FFT (fastMRI's fft2c), written here independently of the library."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def centre_only_percentile(k, lines, q):
    """Independent reference for one coil: keep the frequencies -lines//2 ... lines - lines//2 - 1 along W.

    Works in the unshifted layout (np.fft.fftfreq integer frequencies); the image-space shift of the
    centred convention is circular, so it leaves the magnitude percentile unchanged.
    """
    k_unshifted = np.fft.ifftshift(k, axes=(-2, -1))
    freq = np.rint(np.fft.fftfreq(W) * W).astype(int)
    keep = (freq >= -(lines // 2)) & (freq < lines - lines // 2)
    image = np.fft.ifft2(k_unshifted * keep, norm="ortho")
    return np.percentile(np.abs(image), q)


@pytest.mark.parametrize("lines", [1, 8, 13, W])
def test_single_coil_matches_independent_percentile(lines):
    k = fft2c(known_image())
    for q in (99.0, 90.0):
        expected = centre_only_percentile(k, lines, q)
        got = calibration_rss_scale(k[None].astype(np.complex64), lines, percentile=q)
        assert got == pytest.approx(expected, rel=1e-5)


def test_full_calibration_gives_image_percentile():
    image = known_image(1)
    got = calibration_rss_scale(fft2c(image)[None], W)
    assert got == pytest.approx(np.percentile(np.abs(image), 99.0), rel=1e-9)


def test_multicoil_is_rss_and_scale_equivariant():
    rng = np.random.default_rng(2)
    image = known_image(2)
    maps = rng.standard_normal((4, 1, 1)) + 1j * rng.standard_normal((4, 1, 1))  # constant coil gains
    k = fft2c(maps * image)
    # with constant maps RSS = |image| * ||maps||, so the percentile scales by the maps' norm
    expected = centre_only_percentile(fft2c(image), 12, 99.0) * np.linalg.norm(maps)
    assert calibration_rss_scale(k, 12) == pytest.approx(expected, rel=1e-9)
    c = -2.5 + 1.5j
    assert calibration_rss_scale(c * k, 12) == pytest.approx(abs(c) * calibration_rss_scale(k, 12), rel=1e-9)
    # after dividing by s, the percentile of the scaled data is 1
    s = calibration_rss_scale(k, 12)
    assert calibration_rss_scale(k / s, 12) == pytest.approx(1.0, rel=1e-9)


def test_calibration_rejects_bad_input():
    with pytest.raises(ValueError):
        calibration_rss_scale(np.zeros((2, H, W), np.complex64), 8)
    k = fft2c(known_image())[None]
    for lines in (0, W + 1):
        with pytest.raises(ValueError):
            calibration_rss_scale(k, lines)
    with pytest.raises(ValueError):
        calibration_rss_scale(k, 8, percentile=0.0)


def test_affine_maps_endpoints_and_inverts():
    scale = AffineScale.fit(-1000.0, 3000.0)  # e.g. Hounsfield units
    np.testing.assert_allclose(scale.apply(np.array([-1000.0, 1000.0, 3000.0])), [-1.0, 0.0, 1.0])
    x = np.random.default_rng(3).uniform(-2000, 5000, 100)
    np.testing.assert_allclose(scale.invert(scale.apply(x)), x, rtol=1e-12)
    assert scale.apply(np.array(5000.0)) > 1  # no clipping
    assert scale.scale_sigma(40.0) == pytest.approx(0.02)
    assert AffineScale.from_dict(scale.to_dict()) == scale
    with pytest.raises(ValueError):
        AffineScale.fit(1.0, 1.0)
    with pytest.raises(ValueError):
        AffineScale(0.0, 1.0)
    with pytest.raises(ValueError):
        AffineScale.from_dict({"a": 1.0})


def test_sinogram_consistent_with_projected_affine_image():
    rng = np.random.default_rng(4)
    a_op = rng.standard_normal((30, 20))  # a linear test operator: image (20,) -> sinogram (30,)
    x = rng.uniform(0.0, 0.05, 20)
    scale = AffineScale.fit(0.0, 0.05)
    ones_sinogram = a_op @ np.ones(20)
    np.testing.assert_allclose(scale.apply_to_sinogram(a_op @ x, ones_sinogram), a_op @ scale.apply(x), rtol=1e-10)


def test_image_scale_is_robust_max():
    rng = np.random.default_rng(5)
    x = rng.uniform(0.0, 2.0, 10_000)
    x[:10] = 100.0  # 0.1 % hot pixels
    s = image_scale(x.reshape(100, 100))
    assert s == pytest.approx(2.0 * 0.994, rel=0.01)
    assert image_scale(-3j * x) == pytest.approx(3 * s, rel=1e-12)  # magnitude of complex input
    with pytest.raises(ValueError):
        image_scale(np.zeros((4, 4)))
