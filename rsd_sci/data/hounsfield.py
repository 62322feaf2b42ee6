"""Hounsfield units (HU) <-> linear attenuation coefficients μ in 1/mm.

    HU = 1000 · (μ − μ_water) / μ_water      <=>      μ = μ_water · (1 + HU / 1000)

Air (−1000 HU) maps to μ = 0 and water (0 HU) to μ_water. Values below −1000 HU (noise, padding values
such as −2048 or −3024 in scanner DICOMs) would give negative attenuation, which has no physical meaning,
so `hu_to_mu` clips μ at 0; `mu_to_hu` is the exact inverse on μ ≥ 0.

μ_water at an effective energy of about 70 keV (a typical 120 kVp CT spectrum): NIST XCOM gives a mass
attenuation coefficient for water of about 0.193 cm²/g at 70 keV (0.206 at 60 keV, 0.184 at 80 keV);
with a density of 1 g/cm³ that is 0.193 /cm = 0.0193 /mm. We use 0.0192 /mm. (LoDoPaB-CT uses
20 /m = 0.020 /mm for its own HU conversion; its images are stored normalised, see lodopab.py.)

>>> float(hu_to_mu(0.0)) == MU_WATER, float(hu_to_mu(-1000.0)), round(float(mu_to_hu(MU_WATER * 2)))
(True, 0.0, 1000)
"""

from __future__ import annotations

import numpy as np

MU_WATER = 0.0192
"""Linear attenuation of water at ~70 keV in 1/mm (NIST XCOM: about 0.193 /cm at 70 keV)."""


def hu_to_mu(hu: np.ndarray | float, mu_water: float = MU_WATER) -> np.ndarray:
    """μ = μ_water · (1 + HU/1000), clipped at 0 (anything at or below −1000 HU is air: μ = 0).

    Shape-preserving; float32 for float32 input, float64 otherwise.
    """
    hu = np.asarray(hu)
    dtype = hu.dtype if np.issubdtype(hu.dtype, np.floating) else np.float64
    mu = mu_water * (1.0 + hu.astype(dtype) / 1000.0)
    return np.maximum(mu, 0).astype(dtype, copy=False)


def mu_to_hu(mu: np.ndarray | float, mu_water: float = MU_WATER) -> np.ndarray:
    """HU = 1000 · (μ − μ_water) / μ_water: the inverse of `hu_to_mu` for μ ≥ 0 (0 -> −1000 HU)."""
    mu = np.asarray(mu)
    dtype = mu.dtype if np.issubdtype(mu.dtype, np.floating) else np.float64
    return (1000.0 * (mu.astype(dtype) - mu_water) / mu_water).astype(dtype, copy=False)
