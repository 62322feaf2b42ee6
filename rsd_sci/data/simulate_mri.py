"""One MRI sample of a measurement set: normalised, undersampled k-space with its mask and coil maps.

Two entry points, one output (a dict of `MeasurementSetWriter.append` fields):

- `from_image`: a clean complex image x (H, W) (phantom, or a magnitude source given a smooth phase),
  optional coil maps S (C, H, W):  k = F(S·x);  scale a from the calibration region (the published
  rule: 99th percentile of the low-resolution RSS image maps to 1); y = M ⊙ (a·k + σ_n·n).
- `from_kspace`: fully sampled raw k-space (C, H, W) of a fastMRI file: cropped in readout (H) to the
  reconstruction size, pre-whitened (multi-coil: noise covariance from the read-out oversampling
  region, before the crop), optionally SVD coil-compressed, scaled, undersampled (unless the file is
  already undersampled: its own mask is used as measured), ESPIRiT maps from the calibration lines
  (crop 0, as published).

Noise convention: σ_n is the std per real component in normalised units. Whitened coils carry unit
complex variance (σ = 1/√2 per real component) before scaling, so σ_n = a/√2 is known exactly up to
the covariance estimate. Targets (test split) are magnitudes in normalised units: |x|·a for simulated
data; for files the RSS of the processed fully sampled coil images, centre-cropped to the
reconstruction size (so they share the units of the model's images; the file's own
`reconstruction_rss` is in scanner units before whitening).
"""

from __future__ import annotations

import numpy as np
import torch

from rsd_sci.data import coil_prep, noise_level, scaling
from rsd_sci.physics.coil_maps import espirit_maps
from rsd_sci.physics.fourier import fft2c, ifft2c
from rsd_sci.physics.masks import LineMask

ESPIRIT_MAX_CALIB = 24  # the published ESPIRiT calibration width (sigpy default)


def fft2c_np(x: np.ndarray) -> np.ndarray:
    return fft2c(torch.from_numpy(np.ascontiguousarray(x, dtype=np.complex64))).numpy()


def ifft2c_np(k: np.ndarray) -> np.ndarray:
    return ifft2c(torch.from_numpy(np.ascontiguousarray(k, dtype=np.complex64))).numpy()


def center_lines_of(mask_1d: np.ndarray) -> np.ndarray:
    """The contiguous run of sampled lines through the k-space centre (W // 2): a file mask's ACS."""
    w = mask_1d.shape[-1]
    center = np.zeros(w, bool)
    c = w // 2
    if not mask_1d[c]:
        return center
    lo, hi = c, c
    while lo > 0 and mask_1d[lo - 1]:
        lo -= 1
    while hi < w - 1 and mask_1d[hi + 1]:
        hi += 1
    center[lo:hi + 1] = True
    return center


def _undersample(kspace: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[None, None, :] if mask.ndim == 1 else mask[None]
    return (kspace * m).astype(np.complex64)


def _calib_width(center: np.ndarray) -> int:
    return min(int(center_lines(center).sum()), ESPIRIT_MAX_CALIB)


def _maps(y: np.ndarray, center: np.ndarray, method: str, device: str) -> np.ndarray:
    calib = _calib_width(center)
    if calib < 5:
        raise ValueError(f"the calibration region has {calib} lines; ESPIRiT needs at least 5 "
                         "(raise --center-fraction or the image size)")
    return espirit_maps(y, calib_width=calib, kernel_width=min(6, calib - 2), crop=0.0, method=method,
                        device=device)


def _sigma_auto(y: np.ndarray, mask: np.ndarray) -> float:
    return float(noise_level.estimate_sigma_kspace(y, mask=mask))


def from_image(image: np.ndarray, mask: LineMask, maps: np.ndarray | None, sigma_n: float | str,
               rng: np.random.Generator, with_target: bool, maps_method: str = "torch",
               device: str = "cpu") -> dict:
    """Simulate a measured sample from a clean complex image (H, W); maps (C, H, W) with unit RSS.
    The stored maps are ESPIRiT estimates (`maps_method` torch or sigpy, on `device`)."""
    coil_images = image[None] if maps is None else maps * image[None]
    kspace = fft2c_np(coil_images)
    a = 1.0 / scaling.calibration_rss_scale(kspace, calib_lines=int(center_lines(mask.center).sum()))
    kspace = kspace * a
    if sigma_n != "auto" and sigma_n > 0:
        noise = rng.standard_normal((2, *kspace.shape), dtype=np.float32) * sigma_n
        kspace = kspace + (noise[0] + 1j * noise[1])
    y = _undersample(kspace, mask.mask)
    out = dict(measurements=y, masks=mask.mask, centers=mask.center, scale=a, offset=0.0,
               sigma_n=_sigma_auto(y, mask.mask) if sigma_n == "auto" else float(sigma_n))
    if maps is not None:
        out["coil_maps"] = _maps(y, mask.center, maps_method, device)
    if with_target:
        out["targets"] = (np.abs(image) * a)[None].astype(np.float32)
    return out


def center_lines(center: np.ndarray) -> np.ndarray:
    """The calibration columns: a line mask's centre, or the columns a 2-D calibration box spans."""
    return center if center.ndim == 1 else center.any(axis=0)


def crop_readout(kspace: np.ndarray, height: int) -> np.ndarray:
    """Crop k-space (C, H, W) in the read-out direction (H) to `height` rows of the image (the FOV)."""
    if kspace.shape[-2] <= height:
        return kspace
    img = np.fft.fftshift(np.fft.ifft(np.fft.ifftshift(kspace, axes=-2), axis=-2, norm="ortho"), axes=-2)
    top = (img.shape[-2] - height) // 2
    img = img[..., top:top + height, :]
    return np.fft.fftshift(np.fft.fft(np.fft.ifftshift(img, axes=-2), axis=-2, norm="ortho"),
                           axes=-2).astype(np.complex64)


def from_kspace(kspace: np.ndarray, recon_size: tuple[int, int], mask: LineMask, measured: bool,
                multicoil: bool, virtual_coils: int | None, sigma_n: float | str | None,
                with_target: bool, maps_method: str = "torch", device: str = "cpu") -> dict:
    """Prepare one fully sampled (or, with `measured`, already undersampled) fastMRI slice; ESPIRiT maps
    by `maps_method` (torch or sigpy) on `device`."""
    kspace = kspace.astype(np.complex64)
    if multicoil:
        w = coil_prep.whitening_matrix(coil_prep.noise_covariance(kspace, region="oversampling"))
        kspace = coil_prep.prewhiten(kspace, w)
    kspace = crop_readout(kspace, recon_size[0])
    if multicoil and virtual_coils:
        kspace, _ = coil_prep.coil_compress(kspace, virtual_coils)
    a = 1.0 / scaling.calibration_rss_scale(kspace, calib_lines=int(center_lines(mask.center).sum()))
    kspace = kspace * a
    y = kspace if measured else _undersample(kspace, mask.mask)
    if sigma_n is None:  # whitened: unit complex variance per coil before scaling
        sigma = a / np.sqrt(2.0) if multicoil else _sigma_auto(y, mask.mask)
    else:
        sigma = _sigma_auto(y, mask.mask) if sigma_n == "auto" else float(sigma_n)
    out = dict(measurements=y.astype(np.complex64), masks=mask.mask, centers=mask.center, scale=a,
               offset=0.0, sigma_n=float(sigma))
    if multicoil:
        out["coil_maps"] = _maps(y, mask.center, maps_method, device)
    if with_target and not measured:
        rss = np.sqrt((np.abs(ifft2c_np(kspace)) ** 2).sum(0))
        out["targets"] = center_crop_clamped(rss, recon_size)[None].astype(np.float32)
    return out


def center_crop_clamped(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The centre size = (h, w) of the last two axes (fastMRI offsets), clamped to the image where smaller."""
    h, w = img.shape[-2:]
    th, tw = min(size[0], h), min(size[1], w)
    top, left = (h - th) // 2, (w - tw) // 2
    return img[..., top:top + th, left:left + tw]
