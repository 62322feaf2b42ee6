"""Image-quality metrics with fastMRI's semantics (FID/KID of feature sets: `rsd_sci.metrics.features`).

Reference images x and reconstructions x̂, (S, H, W) volumes (a 2-D image is one slice), in float64,
with data range L (default: the maximum of x over the whole volume, as fastMRI's evaluate does):

    NMSE(x, x̂) = ‖x − x̂‖² / ‖x‖²
    PSNR(x, x̂) = 10 log10(L² / MSE),     MSE = mean over all voxels of (x − x̂)²
    SSIM(x, x̂) = (1/S) Σ_i SSIM_2D(x_i, x̂_i)

SSIM_2D is scikit-image's default: a 7×7 uniform window U (N = 49 pixels), sample (co)variances,

    μ_a = U a,   σ_ab = N/(N−1) (U(ab) − μ_a μ_b),   σ_a² = σ_aa,   C1 = (0.01 L)²,   C2 = (0.03 L)²,
    SSIM_2D(a, b) = mean over pixels ≥ 3 from the border of
                    (2 μ_a μ_b + C1)(2 σ_ab + C2) / ((μ_a² + μ_b² + C1)(σ_a² + σ_b² + C2)).

`volume_metrics` applies fastMRI's evaluation to one volume: magnitude of complex images, the
prediction centre-cropped to the target's (H, W), L = max of the target volume.

Example:
    >>> import numpy as np
    >>> gt = np.ones((2, 8, 8)); gt[:, 2:6, 2:6] = 2            # L = 2
    >>> m = volume_metrics(gt, np.pad(gt + 0.1, ((0, 0), (1, 1), (1, 1))))   # padded: cropped back
    >>> round(m["nmse"], 6), round(m["psnr"], 4), round(m["ssim"], 4)    # 0.64 / 112; 10 log10(4 / 0.01)
    (0.005714, 26.0206, 0.9974)
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = [
    "nmse",
    "psnr",
    "ssim",
    "center_crop",
    "volume_metrics",
    "summarize",
]

METRICS = ("nmse", "psnr", "ssim")
# why a metric may not be a finite number (the note of the JSON files that write it as null)
NON_FINITE_CAUSE = ("PSNR is inf for a prediction equal to its target; NMSE, PSNR and SSIM are inf or nan for "
                    "an all-zero target volume (NMSE divides by its energy, PSNR and SSIM take its maximum, 0, "
                    "as the data range); a mean or std over such a value is too")


def nmse(gt: np.ndarray, pred: np.ndarray) -> float:
    """NMSE = ‖gt − pred‖² / ‖gt‖² over all entries (any equal shapes).

    Example:
        >>> nmse(np.array([3.0, 4.0]), np.array([3.0, 3.0]))
        0.04
    """
    gt, pred = np.asarray(gt, np.float64), np.asarray(pred, np.float64)
    return float(np.linalg.norm(gt - pred) ** 2 / np.linalg.norm(gt) ** 2)


def psnr(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """PSNR = 10 log10(L² / mean((gt − pred)²)) in dB, L = maxval, default gt.max() (any equal shapes).

    Example:
        >>> round(psnr(np.array([1.0, 0.0]), np.array([0.9, 0.1])), 4)   # MSE 0.01, L = 1
        20.0
    """
    gt, pred = np.asarray(gt, np.float64), np.asarray(pred, np.float64)
    return float(peak_signal_noise_ratio(gt, pred, data_range=gt.max() if maxval is None else maxval))


def ssim(gt: np.ndarray, pred: np.ndarray, maxval: float | None = None) -> float:
    """Mean over slices of SSIM_2D (7×7 uniform window) of gt, pred (S, H, W) or (H, W); L = maxval or gt.max().

    H and W must be at least 7. One L for every slice (the volume's maximum by default, as fastMRI).

    Example:
        >>> x = np.tile(np.arange(8.0), (8, 1))
        >>> ssim(x, x)
        1.0
    """
    gt, pred = np.asarray(gt, np.float64), np.asarray(pred, np.float64)
    if gt.shape != pred.shape or gt.ndim not in (2, 3):
        raise ValueError(f"ssim needs two (S, H, W) or (H, W) arrays of one shape, got {gt.shape} and {pred.shape}")
    if gt.ndim == 2:
        gt, pred = gt[None], pred[None]
    data_range = gt.max() if maxval is None else maxval
    return float(np.mean([structural_similarity(g, p, data_range=data_range) for g, p in zip(gt, pred)]))


def center_crop(x: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The centre (h, w) = shape of the last two axes of x (..., H, W): rows from (H − h) // 2, columns from
    (W − w) // 2 (fastMRI's `transforms.center_crop`). Returns a view; ValueError unless 0 < h ≤ H, 0 < w ≤ W.

    Example:
        >>> center_crop(np.arange(25).reshape(5, 5), (2, 3))
        array([[ 6,  7,  8],
               [11, 12, 13]])
    """
    (h, w), (big_h, big_w) = shape, x.shape[-2:]
    if not (0 < h <= big_h and 0 < w <= big_w):
        raise ValueError(f"cannot centre-crop {tuple(x.shape)} to {tuple(shape)}")
    top, left = (big_h - h) // 2, (big_w - w) // 2
    return x[..., top:top + h, left:left + w]


def volume_metrics(target: np.ndarray, prediction: np.ndarray) -> dict[str, float]:
    """{"nmse", "psnr", "ssim"} of one volume as fastMRI's evaluate computes them.

    target (S, H, W) and prediction (S, H', W') with H' ≥ H, W' ≥ W (2-D inputs are one slice):
    complex values become magnitudes, the prediction is centre-cropped to (H, W), and the data range
    is the maximum of the whole target volume (not of each slice). ValueError when the slice counts
    differ or the prediction is smaller than the target. Metrics that are not finite (NON_FINITE_CAUSE)
    come without numpy's warnings.
    """
    target, prediction = (np.abs(a) if np.iscomplexobj(a) else np.asarray(a) for a in (target, prediction))
    target, prediction = (a[None] if a.ndim == 2 else a for a in (target, prediction))
    if target.ndim != 3 or prediction.ndim != 3:
        raise ValueError(f"expected (slices, H, W) volumes, got target {target.shape} and prediction "
                         f"{prediction.shape}")
    if target.shape[0] != prediction.shape[0] or any(p < t for p, t in zip(prediction.shape[1:], target.shape[1:])):
        raise ValueError(f"prediction {prediction.shape} does not fit target {target.shape} (same number of "
                         "slices, each at least as large as the target's)")
    gt = target.astype(np.float64)
    pred = center_crop(prediction, gt.shape[-2:]).astype(np.float64)
    maxval = gt.max()
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"nmse": nmse(gt, pred), "psnr": psnr(gt, pred, maxval), "ssim": ssim(gt, pred, maxval)}


def summarize(per_volume: dict[str, dict[str, float]]) -> dict:
    """{"per_volume": per_volume, "mean": {metric: mean}, "std": {metric: population std (np.std)}}.

    Example:
        >>> summarize({"a": {"psnr": 30.0}, "b": {"psnr": 34.0}})["std"]
        {'psnr': 2.0}
    """
    if not per_volume:
        raise ValueError("summarize needs at least one volume")
    names = list(next(iter(per_volume.values())))
    values = {m: np.array([v[m] for v in per_volume.values()], np.float64) for m in names}
    with np.errstate(invalid="ignore"):   # the std over an inf is nan
        return {
            "per_volume": per_volume,
            "mean": {m: float(v.mean()) for m, v in values.items()},
            "std": {m: float(v.std()) for m, v in values.items()},
        }
