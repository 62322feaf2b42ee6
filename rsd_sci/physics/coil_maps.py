"""Coil sensitivity maps: ESPIRiT estimates from k-space and simulated birdcage maps.

ESPIRiT (Uecker et al. 2014) finds, per pixel, the dominant eigenvector of the calibration-region
k-space kernel operator; the maps S (C, H, W) are that eigenvector, so Σ_c |S_c|² = 1 wherever its
eigenvalue exceeds the crop threshold (here 0 by default: no crop, as the Ambient MRI work publishes)
and the coil images satisfy x_c ≈ S_c · x for a combined image x. Two implementations: ours on torch
(`rsd_sci.physics.espirit`, batched, CPU or CUDA; the default for its speed) and sigpy's EspiritCalib
(the reference; `method="sigpy"`), which agree to ~1e-5 inside the object (tests/physics/test_espirit.py).

Simulated maps come from sigpy's birdcage model (coils on a circle of relative radius `radius` around
the field of view, Biot-Savart-like magnitude and phase) and are normalised to unit RSS, the
convention the operators assume (`rsd_sci.physics.mri.normalize_maps`).

Example:
    >>> from rsd_sci.physics.coil_maps import birdcage_maps
    >>> maps = birdcage_maps(4, 32, 32)
    >>> maps.shape, maps.dtype
    ((4, 32, 32), dtype('complex64'))
"""

from __future__ import annotations

import logging

import numpy as np

from rsd_sci.physics.mri import normalize_maps

log = logging.getLogger(__name__)

ESPIRIT_METHODS = ("torch", "sigpy")


def espirit_maps(kspace: np.ndarray, calib_width: int = 24, thresh: float = 0.02, kernel_width: int = 6,
                 crop: float = 0.0, method: str = "torch", device: str = "cpu") -> np.ndarray:
    """ESPIRiT coil maps of multi-coil k-space.

    Args:
        kspace: complex (C, H, W), centred k-space (only the central calib_width² block is used).
        calib_width: side of the calibration block in k-space.
        thresh: singular-value threshold (relative) for the kernel's signal subspace.
        kernel_width: side of the k-space kernel.
        crop: eigenvalue threshold below which maps are zeroed (0: keep all, as published).
        method: "torch" (ours, `rsd_sci.physics.espirit`) or "sigpy" (EspiritCalib).
        device: "cpu" or a CUDA device ("cuda", "cuda:1"); for sigpy a CUDA device needs cupy.

    Returns:
        complex64 (C, H, W) maps, unit RSS where the eigenvalue exceeds `crop`.
    """
    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise ValueError(f"ESPIRiT needs multi-coil k-space (C, H, W), got shape {kspace.shape}")
    if min(kspace.shape[-2:]) < calib_width:
        raise ValueError(f"calibration width {calib_width} exceeds the k-space size {kspace.shape[-2:]}")
    if method not in ESPIRIT_METHODS:
        raise ValueError(f"unknown ESPIRiT method {method!r} ({' or '.join(ESPIRIT_METHODS)})")
    log.debug("ESPIRiT (%s, %s) on %s k-space (calib %d, kernel %d, thresh %g, crop %g)", method, device,
              kspace.shape, calib_width, kernel_width, thresh, crop)
    if method == "torch":
        import torch

        from rsd_sci.physics.espirit import espirit

        y = torch.from_numpy(np.ascontiguousarray(kspace, dtype=np.complex64)).to(device)
        maps, _ = espirit(y, calib_width=calib_width, thresh=thresh, kernel_width=kernel_width, crop=crop)
        return maps.cpu().numpy()
    import sigpy
    from sigpy.mri.app import EspiritCalib

    sp_device = sigpy.Device(-1 if device == "cpu" else int(str(device).partition(":")[2] or 0))
    maps = EspiritCalib(kspace.astype(np.complex64, copy=False), calib_width=calib_width, thresh=thresh,
                        kernel_width=kernel_width, crop=crop, device=sp_device, show_pbar=False).run()
    return np.asarray(sigpy.to_device(maps, sigpy.cpu_device), dtype=np.complex64)


def birdcage_maps(n_coils: int, height: int, width: int, radius: float = 1.5) -> np.ndarray:
    """Simulated birdcage coil maps, unit RSS: complex64 (n_coils, height, width)."""
    if n_coils < 1 or height < 1 or width < 1:
        raise ValueError(f"need at least one coil and a non-empty image, got ({n_coils}, {height}, {width})")
    from sigpy.mri import birdcage_maps as sigpy_birdcage

    maps = sigpy_birdcage((n_coils, height, width), r=radius, dtype=np.complex64)
    return normalize_maps(np.asarray(maps, dtype=np.complex64)).astype(np.complex64)
