"""Noise-level estimation: sigma_n from k-space periphery or from an image's finest wavelet band.

DSD names noise estimation as its main practical limit; `--sigma-n auto` stores one of these per slice.
Both return sigma PER REAL COMPONENT of the noise (for complex white Gaussian noise n = a + i b with
a, b ~ N(0, sigma^2): E|n|^2 = 2 sigma^2).

- `estimate_sigma_kspace`: the corners of the acquired k-space (outermost 10 % along both axes) hold
  almost no signal (for band-limited or noisy data; sharp high-SNR objects leave some and bias it up),
  so their real and imaginary parts are noise samples; sigma = median(|v|) / Phi^{-1}(3/4) over them
  (the Gaussian median-absolute-value rule, robust to a few signal outliers). With the centred
  orthonormal FFT (rsd_sci.physics.fourier's convention) the same sigma holds in image space.
- `estimate_sigma_image`: Donoho's rule, sigma = median(|HH1|) / Phi^{-1}(3/4) on the finest diagonal
  detail band of the orthonormal Haar transform, where smooth images contribute almost nothing.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> noise = 0.1 * (rng.standard_normal((1, 128, 128)) + 1j * rng.standard_normal((1, 128, 128)))
    >>> round(estimate_sigma_kspace(noise), 1), round(estimate_sigma_image(noise[0]), 1)
    (0.1, 0.1)
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

MAD_TO_SIGMA = 0.6744897501960817  # Phi^{-1}(3/4): median(|v|) of v ~ N(0, 1)
PERIPHERY_FRACTION = 0.10  # the outermost 10 % of each axis (per side) forms the corner band
MIN_SAMPLES = 32  # fewest sampled complex values an estimate may rest on


def corner_band(h: int, w: int) -> np.ndarray:
    """Bool (H, W) mask of the k-space corners: the outer PERIPHERY_FRACTION of rows AND of columns.

    With centred k-space (DC at index (H//2, W//2)), a row h is in the band when
    |h - H//2| >= (1 - 2 * PERIPHERY_FRACTION) * H / 2 (the outer 10 % of rows on each side), likewise
    for columns; the corners are the intersection, 4 % of k-space for the default fraction.
    """

    def outer(n: int) -> np.ndarray:
        dist = np.abs(np.arange(n) - n // 2)
        return dist >= (1.0 - 2.0 * PERIPHERY_FRACTION) * n / 2.0

    return outer(h)[:, None] & outer(w)[None, :]


def periphery_mask(sampled: np.ndarray) -> np.ndarray:
    """Bool (H, W): the sampled locations in the corners of the ACQUIRED k-space box.

    The acquired box is the bounding box of the sampled locations `sampled` (H, W), so zero-padded edges
    (as some scanners and fastMRI files have) do not count; its corners are `corner_band` of the box.
    Raises ValueError when nothing is sampled or the box spans less than half of an axis (its corners
    would then be low frequencies full of signal).
    """
    sampled = np.asarray(sampled, dtype=bool)
    rows, cols = np.flatnonzero(sampled.any(axis=1)), np.flatnonzero(sampled.any(axis=0))
    if rows.size == 0:
        raise ValueError("no sampled k-space locations")
    box = (int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1))
    if 2 * box[0] < sampled.shape[0] or 2 * box[1] < sampled.shape[1]:
        raise ValueError(f"the sampled k-space spans only {box} of {sampled.shape}: no periphery to use")
    band = np.zeros_like(sampled)
    band[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = corner_band(*box)
    return band & sampled


def estimate_sigma_kspace(kspace: np.ndarray, mask: np.ndarray | None = None) -> float:
    """sigma per real component of the white noise in k-space (C, H, W) (or (H, W) for one coil).

    sigma = median(|v|) / 0.6745 over v = the real and imaginary parts of all coils' SAMPLED values in
    the corners of the acquired k-space (`periphery_mask`: outer 10 % of the rows and of the columns
    of the bounding box of the sampled locations; it must span half of each axis). `mask` is a bool array
    broadcastable to (C, H, W), e.g. a (W,) line mask or an (H, W) pattern, True where sampled; without
    one, locations that are exactly 0 in every coil count as unsampled. Units: those of the k-space
    (orthonormal FFT: the same sigma in image space). For whitened coils sigma is the same in every
    coil; otherwise this is a pooled value. Raises ValueError with fewer than MIN_SAMPLES corner samples.
    """
    kspace = np.asarray(kspace)
    if kspace.ndim == 2:
        kspace = kspace[None]
    if kspace.ndim != 3:
        raise ValueError(f"k-space must be (C, H, W) or (H, W), got shape {kspace.shape}")
    if mask is None:
        sampled = np.broadcast_to(np.any(kspace != 0, axis=0, keepdims=True), kspace.shape)
    else:
        try:
            sampled = np.broadcast_to(np.asarray(mask).astype(bool), kspace.shape)
        except ValueError as err:
            raise ValueError(f"mask {np.shape(mask)} does not broadcast to {kspace.shape}") from err
    select = sampled & periphery_mask(sampled.any(axis=0))[None]
    values = kspace[select]
    if values.size < MIN_SAMPLES:
        raise ValueError(
            f"only {values.size} sampled k-space values in the periphery; need {MIN_SAMPLES} to estimate sigma"
        )
    parts = np.concatenate([values.real.ravel(), values.imag.ravel()]).astype(np.float64)
    sigma = float(np.median(np.abs(parts)) / MAD_TO_SIGMA)
    logger.debug("sigma_n from %d k-space corner samples: %.4g", values.size, sigma)
    return sigma


def _haar_hh(image: np.ndarray) -> np.ndarray:
    """Finest diagonal detail band of the orthonormal 2-D Haar transform of a real (H, W) image.

    HH[i, j] = (x[2i, 2j] - x[2i, 2j+1] - x[2i+1, 2j] + x[2i+1, 2j+1]) / 2, shape (H//2, W//2)
    (an odd last row or column is dropped). Orthonormal: white noise of std sigma stays std sigma.
    """
    h, w = image.shape
    x = image[: h - h % 2, : w - w % 2]
    return (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0


def estimate_sigma_image(image: np.ndarray) -> float:
    """Noise std of an (H, W) image by Donoho's rule: sigma = median(|HH1|) / 0.6745.

    HH1 is the finest diagonal Haar detail band (`_haar_hh`). For a complex image the result is per real
    component: the mean of the estimates on the real and the imaginary parts. Needs H, W >= 2.
    """
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 2:
        raise ValueError(f"image must be 2-D with both sides >= 2, got shape {image.shape}")

    def donoho(x: np.ndarray) -> float:
        return float(np.median(np.abs(_haar_hh(x.astype(np.float64)))) / MAD_TO_SIGMA)

    if np.iscomplexobj(image):
        return 0.5 * (donoho(image.real) + donoho(image.imag))
    return donoho(image)
