"""Data scaling (docs/method.md, "Data preparation"): per-slice MRI scale, affine CT normalisation, robust image scale.

Clean data should sit roughly in [-1, 1] (sigma_d = 0.5 assumes it). Every scale here is linear in the
data, so the noise level follows it: after y -> y / s, sigma_n -> sigma_n / s; after x -> a x + b,
sigma_n -> |a| sigma_n. Store both per sample, since they change per slice.

- MRI: `calibration_rss_scale` s = the 99th percentile of the RSS image of the calibration region;
  k-space / s maps that percentile to 1.
- CT: `AffineScale` x' = a x + b (no clipping; clip only for display), measurements y' = a y + b A1.
- Magnitude images: `image_scale` s = a high percentile of |x|; x / s maps the robust max to 1.

Example:
    >>> import numpy as np
    >>> scale = AffineScale.fit(0.0, 2.0)
    >>> scale.apply(np.array([0.0, 1.0, 2.0])).tolist(), scale.invert(np.array([1.0])).tolist()
    ([-1.0, 0.0, 1.0], [2.0])
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)


def _ifft2c(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D inverse FFT over the last two axes (rsd_sci.physics.fourier's convention).

    x = fftshift(ifft2(ifftshift(k), norm="ortho")), shapes (..., H, W) -> (..., H, W).
    """
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), norm="ortho"), axes=axes)


def _check_percentile(percentile: float) -> float:
    percentile = float(percentile)
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    return percentile


def _check_scale(s: float, what: str) -> float:
    if not math.isfinite(s) or s <= 0.0:
        raise ValueError(f"{what} is {s}: the data are all zero (or not finite) and cannot be scaled")
    return s


def calibration_rss_scale(kspace: np.ndarray, calib_lines: int, percentile: float = 99.0) -> float:
    """Per-slice MRI scale s from the calibration region of k-space (C, H, W) (or (H, W) for one coil).

    Keep only the `calib_lines` centre columns along W (the fully sampled ACS lines: columns
    W//2 - calib_lines//2 ... W//2 - calib_lines//2 + calib_lines - 1, centred on the DC column W//2,
    the same window as fastMRI's centre lines for even W), zero elsewhere; x_c = ifft2c of it per coil
    (centred orthonormal); RSS(p) = sqrt(sum_c |x_c(p)|^2); s = percentile_p(RSS) (the `percentile`-th,
    99 by default). kspace / s then maps that percentile to 1, and sigma_n -> sigma_n / s.
    Equivariant: calibration_rss_scale(c k) = |c| calibration_rss_scale(k). Raises ValueError for bad
    calib_lines or percentile, or when s is 0 (all-zero data).
    """
    kspace = np.asarray(kspace)
    if kspace.ndim == 2:
        kspace = kspace[None]
    if kspace.ndim != 3:
        raise ValueError(f"k-space must be (C, H, W) or (H, W), got shape {kspace.shape}")
    percentile = _check_percentile(percentile)
    width = kspace.shape[-1]
    if isinstance(calib_lines, bool) or not isinstance(calib_lines, (int, np.integer)):
        raise ValueError(f"calib_lines must be an integer, got {calib_lines!r}")
    if not 1 <= calib_lines <= width:
        raise ValueError(f"calib_lines must be in [1, {width}], got {calib_lines}")
    start = width // 2 - calib_lines // 2
    centre = np.zeros(kspace.shape, dtype=np.complex128)
    centre[..., start : start + calib_lines] = kspace[..., start : start + calib_lines]
    rss = np.sqrt(np.sum(np.abs(_ifft2c(centre)) ** 2, axis=0))
    s = _check_scale(float(np.percentile(rss, percentile)), "the calibration RSS percentile")
    logger.debug("calibration scale from %d lines: %.4g", calib_lines, s)
    return s


def image_scale(x: np.ndarray, percentile: float = 99.5) -> float:
    """Robust maximum s of a magnitude image x (any shape; complex input uses |x|): s = percentile(|x|).

    x / s maps the robust maximum to 1 (a few hot pixels above it are not clipped); callers that want
    [-1, 1] then apply 2 (x / s) - 1, which changes sigma_n to 2 sigma_n / s. Raises ValueError when s is 0.
    """
    percentile = _check_percentile(percentile)
    magnitude = np.abs(np.asarray(x))
    if magnitude.size == 0:
        raise ValueError("cannot scale an empty image")
    return _check_scale(float(np.percentile(magnitude, percentile)), "the image percentile")


@dataclass
class AffineScale:
    """CT normalisation x' = a x + b, with no clipping (clip only for display).

    For a linear projector A and an all-ones image 1: A(a x + b 1) = a A(x) + b A(1), so measured
    sinograms map as y' = a y + b A1 (`apply_to_sinogram`); noise std maps as |a| sigma_n.
    """

    a: float  # gain, nonzero
    b: float  # offset

    def __post_init__(self) -> None:
        self.a = float(self.a)
        self.b = float(self.b)
        if not (math.isfinite(self.a) and math.isfinite(self.b)) or self.a == 0.0:
            raise ValueError(f"AffineScale needs finite a != 0 and finite b, got a={self.a}, b={self.b}")

    @classmethod
    def fit(cls, lo: float, hi: float) -> AffineScale:
        """Map [lo, hi] onto [-1, 1]: a = 2 / (hi - lo), b = -(hi + lo) / (hi - lo)."""
        lo, hi = float(lo), float(hi)
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
            raise ValueError(f"AffineScale.fit needs finite lo < hi, got lo={lo}, hi={hi}")
        return cls(a=2.0 / (hi - lo), b=-(hi + lo) / (hi - lo))

    def apply(self, x: np.ndarray) -> np.ndarray:
        """x' = a x + b."""
        return self.a * np.asarray(x) + self.b

    def invert(self, x_scaled: np.ndarray) -> np.ndarray:
        """x = (x' - b) / a."""
        return (np.asarray(x_scaled) - self.b) / self.a

    def apply_to_sinogram(self, y: np.ndarray, ones_sinogram: np.ndarray) -> np.ndarray:
        """y' = a y + b A1, with ones_sinogram = A1 the projection of the all-ones image (same shape as y)."""
        return self.a * np.asarray(y) + self.b * np.asarray(ones_sinogram)

    def scale_sigma(self, sigma_n: float) -> float:
        """Noise std in the normalised units: |a| sigma_n."""
        return abs(self.a) * float(sigma_n)

    def to_dict(self) -> dict[str, float]:
        """{"a": a, "b": b}, for YAML / HDF5 attributes."""
        return {"a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict) -> AffineScale:
        """Inverse of `to_dict`; raises ValueError when "a" or "b" is missing."""
        missing = [key for key in ("a", "b") if key not in d]
        if missing:
            raise ValueError(f"AffineScale dict lacks {missing}")
        return cls(a=d["a"], b=d["b"])
