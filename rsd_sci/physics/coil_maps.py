"""Coil sensitivity maps: ESPIRiT estimates from k-space and simulated birdcage maps.

ESPIRiT (Uecker et al. 2014) finds, per pixel, the dominant eigenvector of the calibration-region
k-space kernel operator; the maps S (C, H, W) are that eigenvector, so Σ_c |S_c|² = 1 wherever its
eigenvalue exceeds the crop threshold (here 0 by default: no crop, as the Ambient MRI work publishes)
and the coil images satisfy x_c ≈ S_c · x for a combined image x. The sigpy implementation is used.

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


def espirit_maps(kspace: np.ndarray, calib_width: int = 24, thresh: float = 0.02, kernel_width: int = 6,
                 crop: float = 0.0, device: int = -1) -> np.ndarray:
    """ESPIRiT coil maps of multi-coil k-space.

    Args:
        kspace: complex (C, H, W), centred k-space (only the central calib_width² block is used).
        calib_width: side of the calibration block in k-space.
        thresh: singular-value threshold (relative) for the kernel's signal subspace.
        kernel_width: side of the k-space kernel.
        crop: eigenvalue threshold below which maps are zeroed (0: keep all, as published).
        device: -1 for the CPU, else a CUDA device index (sigpy with cupy).

    Returns:
        complex64 (C, H, W) maps, unit RSS where the eigenvalue exceeds `crop`.
    """
    kspace = np.asarray(kspace)
    if kspace.ndim != 3:
        raise ValueError(f"ESPIRiT needs multi-coil k-space (C, H, W), got shape {kspace.shape}")
    if min(kspace.shape[-2:]) < calib_width:
        raise ValueError(f"calibration width {calib_width} exceeds the k-space size {kspace.shape[-2:]}")
    import sigpy
    from sigpy.mri.app import EspiritCalib

    log.debug("ESPIRiT on %s k-space (calib %d, kernel %d, thresh %g, crop %g)", kspace.shape,
              calib_width, kernel_width, thresh, crop)
    maps = EspiritCalib(kspace.astype(np.complex64, copy=False), calib_width=calib_width, thresh=thresh,
                        kernel_width=kernel_width, crop=crop, device=sigpy.Device(device),
                        show_pbar=False).run()
    return np.asarray(sigpy.to_device(maps, sigpy.cpu_device), dtype=np.complex64)


def birdcage_maps(n_coils: int, height: int, width: int, radius: float = 1.5) -> np.ndarray:
    """Simulated birdcage coil maps, unit RSS: complex64 (n_coils, height, width)."""
    if n_coils < 1 or height < 1 or width < 1:
        raise ValueError(f"need at least one coil and a non-empty image, got ({n_coils}, {height}, {width})")
    from sigpy.mri import birdcage_maps as sigpy_birdcage

    maps = sigpy_birdcage((n_coils, height, width), r=radius, dtype=np.complex64)
    return normalize_maps(np.asarray(maps, dtype=np.complex64)).astype(np.complex64)
