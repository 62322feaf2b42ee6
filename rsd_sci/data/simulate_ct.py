"""One CT sample of a measurement set: a normalised sparse-view sinogram with its view mask.

Attenuation μ (1/mm) is normalised by the affine map of docs/method.md, x' = a·μ + b, with [0, 2·μ_water]
(air to +1000 HU, dense bone) mapped to [-1, 1] and no clipping. By linearity the measured sinogram of
the normalised image is y' = A(x') = a·A(μ) + b·A𝟙, so we project x' directly; Gaussian noise σ_n
(normalised units) is added on the sampled views only.
"""

from __future__ import annotations

import numpy as np
import torch

from rsd_sci.data import noise_level
from rsd_sci.data.hounsfield import MU_WATER
from rsd_sci.data.scaling import AffineScale
from rsd_sci.physics.ct import ParallelBeamCT

CT_RANGE = (0.0, 2.0 * MU_WATER)  # μ mapped to [-1, 1]: air -> -1, water -> 0, +1000 HU -> 1


def ct_scale() -> AffineScale:
    return AffineScale.fit(*CT_RANGE)


def from_attenuation(mu: np.ndarray, n_angles: int, view_mask: np.ndarray, sigma_n: float | str,
                     rng: np.random.Generator, with_target: bool) -> dict:
    """Simulate a measured sample from an attenuation image μ (N, N) in 1/mm."""
    affine = ct_scale()
    x = affine.apply(mu.astype(np.float32))
    op = ParallelBeamCT(x.shape[-1], n_angles, view_mask=torch.from_numpy(view_mask))
    y = op.A(torch.from_numpy(x)[None, None]).numpy()[0]
    rows = view_mask.astype(np.float32)[None, :, None]
    if sigma_n != "auto" and sigma_n > 0:
        y = y + rows * sigma_n * rng.standard_normal(y.shape, dtype=np.float32)
    sigma = (noise_level.estimate_sigma_image(y[0][view_mask]) if sigma_n == "auto" else float(sigma_n))
    out = dict(measurements=y.astype(np.float32), masks=view_mask, scale=affine.a, offset=affine.b,
               sigma_n=float(sigma))
    if with_target:
        out["targets"] = x[None]
    return out
