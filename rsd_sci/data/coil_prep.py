"""Multi-coil preparation: noise covariance, pre-whitening and SVD coil compression.

The order the measurement pipeline uses, per slice of raw multi-coil k-space y (C, H, W):

    cov = noise_covariance(y)            # (C, C), E[n n^H] from a signal-free image region
    W   = whitening_matrix(cov)          # (C, C), W cov W^H = I
    y_w = prewhiten(y, W)                # coils now carry independent noise with E|n|^2 = 1
    y_v, M = coil_compress(y_w, n)       # (n, H, W); M (n, C) has orthonormal rows, noise stays white

After whitening (and compression) every coil carries complex white noise with E|n|^2 = 1, i.e.
sigma = 1/sqrt(2) per real component. The data scale s (rsd_sci.data.scaling) then divides both:
sigma_n = (1/sqrt(2)) / s in the stored units.

Conventions:
- Covariance is the complex second moment Sigma = E[n n^H] (C, C), Hermitian positive definite; the noise
  variance per real component of coil c is Sigma[c, c] / 2 (circular complex Gaussian noise).
- Exactly-zero k-space locations (in every coil) count as unsampled; see `noise_covariance`.
- FFTs are centred and orthonormal (the same convention as rsd_sci.physics.fourier, fastMRI's ifft2c and
  sigpy's ifft), so a white-noise covariance is the same in k-space and in image space: estimating it
  from image pixels that hold no signal estimates the k-space noise covariance.
- k-space comes in and goes out complex64; the small (C, C) matrices are complex128.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = (rng.standard_normal((4, 64, 64)) + 1j * rng.standard_normal((4, 64, 64))).astype(np.complex64)
    >>> W = whitening_matrix(noise_covariance(y, region="oversampling"))
    >>> y_v, M = coil_compress(prewhiten(y, W), 2)
    >>> y_v.shape, M.shape
    ((2, 64, 64), (2, 4))
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import ndimage

from rsd_sci.data.noise_level import periphery_mask

logger = logging.getLogger(__name__)

REGIONS = ("auto", "oversampling", "kspace")
BACKGROUND_FRACTION = 0.10  # "auto": the darkest 10 % of pixels (by leave-one-out local energy)
LOCAL_WINDOW = 7  # "auto": side of the square window that measures a pixel's neighbourhood energy
AUTO_MIN_SAMPLED = 0.8  # "auto": below this sampled fraction of the acquired box, use the corners
MIN_SAMPLES = 64  # "kspace": fewest sampled corner locations an estimate may rest on
EIG_FLOOR = 1e-6  # whitening: eigenvalues below EIG_FLOOR * max eigenvalue are raised to that floor


def _ifft2c(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D inverse FFT over the last two axes (rsd_sci.physics.fourier's convention).

    x = fftshift(ifft2(ifftshift(k), norm="ortho")), shapes (..., H, W) -> (..., H, W).
    """
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), norm="ortho"), axes=axes)


def _check_kspace(kspace: np.ndarray) -> np.ndarray:
    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise ValueError(f"multi-coil k-space must be (C, H, W), got shape {kspace.shape}")
    return kspace


def _background_mask(image: np.ndarray, region: str) -> np.ndarray:
    """Bool (H, W) mask of the signal-free pixels of a coil image stack (C, H, W).

    "oversampling": the top and bottom eighths along H (outside the field of view of data read out with
    x2 oversampling along H, as fastMRI's knee and brain k-space are).
    "auto": the darkest BACKGROUND_FRACTION of pixels ranked by their leave-one-out local energy
        e(p) = (sum_{q in N(p)} r(q)^2 - r(p)^2) / (|N(p)| - 1),   r = RSS over coils,
    with N(p) the LOCAL_WINDOW x LOCAL_WINDOW window around p (wrapping at the borders, as the image is
    periodic under the FFT). Leaving the pixel itself out makes the choice independent of its own noise,
    so for image-space white noise the chosen pixels are unbiased noise samples; ranking by their own
    RSS instead would pick the pixels whose noise happens to be small and bias Sigma low by ~2x. The
    rule needs a background covering more than BACKGROUND_FRACTION of the image, e.g. an object in the
    middle of the field of view.
    """
    h = image.shape[-2]
    if region == "oversampling":
        band = h // 8
        if band < 1:
            raise ValueError(f"region='oversampling' needs H >= 8, got H = {h}")
        mask = np.zeros(image.shape[-2:], dtype=bool)
        mask[:band] = True
        mask[h - band :] = True
        return mask
    power = np.sum(np.abs(image) ** 2, axis=0)  # RSS^2, (H, W)
    n = LOCAL_WINDOW * LOCAL_WINDOW
    local = ndimage.uniform_filter(power, size=LOCAL_WINDOW, mode="wrap") * n
    energy = (local - power) / (n - 1)
    threshold = np.quantile(energy, BACKGROUND_FRACTION)
    return energy <= threshold


def noise_covariance(kspace: np.ndarray, region: str = "auto") -> np.ndarray:
    """Hermitian noise covariance Sigma = E[n n^H] (C, C) of multi-coil k-space (C, H, W).

    Sigma_hat = X X^H / N, no mean removed (noise is zero-mean), with X (C, N) chosen by `region`:
    - "oversampling": image pixels (centred orthonormal iFFT per coil) in the top and bottom eighths
      along H, outside the field of view of x2-oversampled readouts (fastMRI knee and brain);
    - "auto": image pixels of the background, the darkest 10 % by leave-one-out local energy (see
      `_background_mask`); when less than AUTO_MIN_SAMPLED of the acquired k-space box (the bounding
      box of the sampled locations, so zero-padded edges do not count) is sampled, the data are
      undersampled and their image background holds aliasing: "auto" then falls back to "kspace";
    - "kspace": the sampled values in the corners of the acquired k-space box (outer 10 % of its rows
      and of its columns, rsd_sci.data.noise_level.periphery_mask), where the signal is negligible (an
      assumption: strong sharp-edged objects leave signal there and bias Sigma up); the box must span
      at least half of each axis and hold MIN_SAMPLES sampled corner locations (else ValueError).
    Locations that are exactly 0 in every coil count as unsampled (zero padding, skipped lines). In image
    space, white k-space noise sampled at a fraction f of the locations has per-pixel covariance f Sigma,
    so the image-region estimates are divided by f. Per real component, the noise variance of coil c is
    Sigma[c, c] / 2. Returns complex128, made exactly Hermitian.
    """
    kspace = _check_kspace(kspace)
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
    sampled = np.any(kspace != 0, axis=0)  # (H, W)
    fraction = float(sampled.mean())
    if fraction == 0.0:
        raise ValueError("k-space is all zero: no noise to estimate")
    if region == "auto":
        rows, cols = np.flatnonzero(sampled.any(axis=1)), np.flatnonzero(sampled.any(axis=0))
        fill = float(sampled[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1].mean())  # the acquired box
        if fill < AUTO_MIN_SAMPLED:
            logger.info("only %.0f %% of the acquired k-space sampled: noise from its corners", 100 * fill)
            region = "kspace"
    if region == "kspace":
        samples = kspace[:, periphery_mask(sampled)].astype(np.complex128)
        if samples.shape[1] < MIN_SAMPLES:
            raise ValueError(f"only {samples.shape[1]} sampled k-space corner locations; need {MIN_SAMPLES}")
        fraction = 1.0
    else:
        image = _ifft2c(kspace.astype(np.complex128, copy=False))
        samples = image[:, _background_mask(image, region)]  # (C, N)
    n = samples.shape[1]
    cov = samples @ samples.conj().T / (n * fraction)
    logger.debug("noise covariance from %d samples (region=%s, sampled fraction %.3f)", n, region, fraction)
    return 0.5 * (cov + cov.conj().T)


def whitening_matrix(cov: np.ndarray) -> np.ndarray:
    """Whitening matrix W = Sigma^{-1/2} (C, C), Hermitian, with W Sigma W^H = I.

    From the eigendecomposition Sigma = V diag(lam) V^H: W = V diag(1 / sqrt(max(lam, floor))) V^H,
    floor = EIG_FLOOR * max(lam). The symmetric inverse square root (rather than the Cholesky factor
    L^{-1}) is the whitening closest to the identity, so virtual coil c stays mostly physical coil c.
    Directions with eigenvalues below the floor are regularised (there W Sigma W^H < I). Raises
    ValueError for a non-square, non-Hermitian or non-positive matrix.
    """
    cov = np.asarray(cov, dtype=np.complex128)
    if cov.ndim != 2 or cov.shape[0] != cov.shape[1]:
        raise ValueError(f"covariance must be square (C, C), got shape {cov.shape}")
    scale = np.max(np.abs(cov)) if cov.size else 0.0
    if not np.isfinite(scale) or scale <= 0:
        raise ValueError("covariance is zero or not finite")
    if np.max(np.abs(cov - cov.conj().T)) > 1e-6 * scale:
        raise ValueError("covariance is not Hermitian")
    lam, vec = np.linalg.eigh(0.5 * (cov + cov.conj().T))
    if lam[-1] <= 0:
        raise ValueError("covariance has no positive eigenvalue")
    lam = np.maximum(lam, EIG_FLOOR * lam[-1])
    return (vec / np.sqrt(lam)) @ vec.conj().T


def prewhiten(kspace: np.ndarray, W: np.ndarray) -> np.ndarray:  # noqa: N803 (the maths' name)
    """Apply W across the coil axis: y'_c = sum_d W[c, d] y_d; (C, H, W) -> (C', H, W), complex64.

    With W from `whitening_matrix`, each output coil carries independent complex white noise with
    E|n|^2 = 1, i.e. sigma = 1/sqrt(2) per real component, in the units of the k-space given.
    """
    kspace = _check_kspace(kspace)
    W = np.asarray(W)  # noqa: N806
    if W.ndim != 2 or W.shape[1] != kspace.shape[0]:
        raise ValueError(f"W {W.shape} does not match {kspace.shape[0]} coils")
    out = np.tensordot(W.astype(np.complex128), kspace.astype(np.complex128, copy=False), axes=(1, 0))
    return out.astype(np.complex64)


def coil_compress(kspace: np.ndarray, n_virtual: int) -> tuple[np.ndarray, np.ndarray]:
    """SVD coil compression of k-space (C, H, W) to n_virtual virtual coils.

    With Y the (C, H*W) matrix of the whole k-space and Y = U S V^H its thin SVD, the compression matrix
    is M = U[:, :n]^H (n, C): the n dominant left-singular vectors, found as the top eigenvectors of the
    coil Gram matrix Y Y^H (C, C) = U S^2 U^H (same subspace, cheaper than the full SVD). Returns
    (M Y reshaped to (n, H, W) complex64, M complex128). M has orthonormal rows (M M^H = I_n), so
    whitened noise stays white with unit variance; n = C gives a unitary M (lossless: M^H M Y = Y), and
    the fraction of energy kept is sum(S[:n]^2) / sum(S^2). Raises ValueError unless 1 <= n <= C.
    """
    kspace = _check_kspace(kspace)
    n_coils = kspace.shape[0]
    if isinstance(n_virtual, bool) or not isinstance(n_virtual, (int, np.integer)):
        raise ValueError(f"n_virtual must be an integer, got {n_virtual!r}")
    if not 1 <= n_virtual <= n_coils:
        raise ValueError(f"n_virtual must be in [1, {n_coils}] for {n_coils} coils, got {n_virtual}")
    Y = kspace.reshape(n_coils, -1).astype(np.complex128, copy=False)  # noqa: N806
    gram = Y @ Y.conj().T
    lam, vec = np.linalg.eigh(0.5 * (gram + gram.conj().T))  # ascending
    order = np.argsort(lam)[::-1][:n_virtual]
    matrix = vec[:, order].conj().T  # (n, C)
    kept = lam[order].sum() / max(lam.sum(), np.finfo(float).tiny)
    logger.debug("coil compression %d -> %d keeps %.6f of the energy", n_coils, n_virtual, kept)
    out = (matrix @ Y).reshape((n_virtual,) + kspace.shape[1:])
    return out.astype(np.complex64), matrix
