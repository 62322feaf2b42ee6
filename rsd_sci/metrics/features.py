"""FID and KID of two image sets through a feature extractor the user supplies (no weights downloaded).

The extractor is a TorchScript file (`torch.jit.load`: no pickle) of one of two interfaces, told from its
forward (`rsd_sci.metrics.extractors`): one-channel, fed (B, 1, H, W) float32 magnitudes, or the
StyleGAN2-ADA Inception detector, fed (B, 3, H, W) uint8 in 0-255; either returns (B, d) features.
For features f (N, d) and g (M, d) (FID with Inception features is Heusel et al. 2017, KID is Bińkowski et al. 2018):

    FID(f, g) = ‖μ_f − μ_g‖² + tr(Σ_f + Σ_g − 2 (Σ_f Σ_g)^{1/2})     (Gaussian fits, ddof = 1)
    KID(f, g) = 1/(N(N−1)) Σ_{i≠j} k(f_i, f_j) + 1/(M(M−1)) Σ_{i≠j} k(g_i, g_j) − 2/(NM) Σ_{i,j} k(f_i, g_j),
                k(u, v) = (uᵀv / d + 1)³    (the unbiased MMD², over the full sets)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsd_sci.errors import InputError
from rsd_sci.metrics.extractors import INTERFACE_INPUT, extract_features, interface_of


def feature_distances(path: Path, extractor, x: np.ndarray, y: np.ndarray, device) -> dict:
    """{"fid", "kid", "feature_dim", "feature_interface"} of image sets x and y (N, C, H, W) through the
    extractor read from `path` (named in the one-line errors; None for a module given as such)."""
    try:
        interface = interface_of(extractor)
    except ValueError as err:
        raise InputError(path, str(err)) from None
    try:
        fx, fy = extract_features(extractor, x, device), extract_features(extractor, y, device)
    except Exception as err:   # the user's code: whatever it raises (torch.jit.Error is no RuntimeError) refuses
        raise InputError(path, f"the extractor fails on {INTERFACE_INPUT[interface]} ({_last_line(err)})") from None
    if not (np.isfinite(fx).all() and np.isfinite(fy).all()):
        raise InputError(path, "feature extractor returned NaN or Inf")
    try:
        return {"fid": frechet_distance(fx, fy), "kid": kernel_inception_distance(fx, fy),
                "feature_dim": int(fx.shape[1]), "feature_interface": interface}
    except ValueError as err:
        raise InputError(None, f"FID/KID: {err}") from None


def _last_line(err: Exception) -> str:
    """What went wrong, in one line: TorchScript puts its own traceback first and the error last."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _feature_sets(f: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f, g = np.asarray(f, np.float64), np.asarray(g, np.float64)
    if f.ndim != 2 or g.ndim != 2 or f.shape[1] != g.shape[1] or min(len(f), len(g)) < 2:
        raise ValueError(f"feature sets must be (N, d) and (M, d) with N, M ≥ 2, got {f.shape} and {g.shape}")
    return f, g


def frechet_distance(f: np.ndarray, g: np.ndarray) -> float:
    """FID between Gaussian fits of features f (N, d) and g (M, d) (module docstring); ≥ 0.

    The matrix square root is scipy.linalg.sqrtm, real part (round-off leaves tiny imaginary parts);
    the result is clipped at 0 (round-off on identical sets).

    Example:
        >>> f = np.random.default_rng(0).normal(size=(500, 2))
        >>> round(frechet_distance(f, f), 6)
        0.0
        >>> round(frechet_distance(f, f + [3.0, 4.0]), 6)   # a shift m adds ‖m‖² = 25
        25.0
    """
    from scipy.linalg import sqrtm

    f, g = _feature_sets(f, g)
    mu_f, mu_g = f.mean(0), g.mean(0)
    cov_f, cov_g = np.atleast_2d(np.cov(f, rowvar=False)), np.atleast_2d(np.cov(g, rowvar=False))
    root = np.real(sqrtm(cov_f @ cov_g))
    value = np.sum((mu_f - mu_g) ** 2) + np.trace(cov_f + cov_g - 2 * root)
    return max(float(value), 0.0)


def kernel_inception_distance(f: np.ndarray, g: np.ndarray) -> float:
    """KID: unbiased MMD² between features f (N, d) and g (M, d), cubic polynomial kernel (module docstring).

    Unbiased, so it can be slightly negative for sets from one distribution. Kernel matrices are
    N × N, M × M and N × M (float64).

    Example:
        >>> f = np.random.default_rng(0).normal(size=(200, 4))
        >>> abs(kernel_inception_distance(f[:100], f[100:])) < 0.1    # two halves of one sample: ≈ 0
        True
        >>> kernel_inception_distance(f, f + 2) > 100
        True
    """
    f, g = _feature_sets(f, g)
    n, m, d = len(f), len(g), f.shape[1]
    k_ff, k_gg, k_fg = ((a @ b.T / d + 1) ** 3 for a, b in ((f, f), (g, g), (f, g)))
    within_f = (k_ff.sum() - np.trace(k_ff)) / (n * (n - 1))
    within_g = (k_gg.sum() - np.trace(k_gg)) / (m * (m - 1))
    return float(within_f + within_g - 2 * k_fg.mean())
