"""Test fixture: write small files in the published fastMRI schema (independent of rsd_sci.physics).

    write_fastmri_file(path, kspace, recon_size=(h, w), target="rss", mask=None, ...)
    make_fastmri_kspace(n_slices, n_coils, H, W, seed)

The schema (fastMRI, Zbontar et al. 2018): `kspace` complex64 (S, H, W) single-coil or (S, C, H, W)
multi-coil; `reconstruction_rss` / `reconstruction_esc` float32 (S, h, w); `mask` (W,) in test files;
`ismrmrd_header` bytes of ISMRMRD XML; attrs acquisition, max, norm, patient_id (+ acceleration,
num_low_frequency in test files). The target is computed as fastMRI does: x_c = ifft2c(k_c) per coil,
rss = sqrt(Σ_c |x_c|²) (|x| for single-coil, the emulated single-coil target "esc"), centre-cropped to
recon_size (crop offsets (H − h)//2, (W − w)//2). The FFT here is numpy's centred orthonormal one, not
rsd_sci's, so tests of rsd_sci against these files are independent of rsd_sci.physics.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import sigpy.mri

from rsd_sci.data.phantoms import mri_phantoms

ISMRMRD_NS = "http://www.ismrm.org/ISMRMRD"


def fft2c(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT over the last two axes."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=axes), norm="ortho"), axes=axes)


def ifft2c(k: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D inverse FFT over the last two axes."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=axes), norm="ortho"), axes=axes)


def center_crop(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop the last two axes to `size` around the centre, fastMRI's offsets ((H − h)//2, (W − w)//2)."""
    h, w = size
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., top:top + h, left:left + w]


def ismrmrd_header(enc: tuple[int, int], rec: tuple[int, int], center: int, maximum: int) -> bytes:
    """A minimal valid ISMRMRD XML header with the fields fastMRI reads."""
    fov_rec = 140.0
    fov_enc = (fov_rec * enc[0] / rec[0], fov_rec * enc[1] / rec[1])
    return f"""<?xml version="1.0" encoding="utf-8"?>
<ismrmrdHeader xmlns="{ISMRMRD_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <experimentalConditions><H1resonanceFrequency_Hz>127000000</H1resonanceFrequency_Hz></experimentalConditions>
  <encoding>
    <encodedSpace>
      <matrixSize><x>{enc[0]}</x><y>{enc[1]}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{fov_enc[0]:.4f}</x><y>{fov_enc[1]:.4f}</y><z>4.5</z></fieldOfView_mm>
    </encodedSpace>
    <reconSpace>
      <matrixSize><x>{rec[0]}</x><y>{rec[1]}</y><z>1</z></matrixSize>
      <fieldOfView_mm><x>{fov_rec:.4f}</x><y>{fov_rec:.4f}</y><z>4.5</z></fieldOfView_mm>
    </reconSpace>
    <trajectory>cartesian</trajectory>
    <encodingLimits>
      <kspace_encoding_step_1><minimum>0</minimum><maximum>{maximum}</maximum><center>{center}</center></kspace_encoding_step_1>
      <kspace_encoding_step_2><minimum>0</minimum><maximum>0</maximum><center>0</center></kspace_encoding_step_2>
      <slice><minimum>0</minimum><maximum>0</maximum><center>0</center></slice>
    </encodingLimits>
  </encoding>
</ismrmrdHeader>
""".encode()


def write_fastmri_file(
    path: str | Path,
    kspace: np.ndarray,
    recon_size: tuple[int, int] = (320, 320),
    target: str | None = "rss",
    mask: np.ndarray | None = None,
    acquisition: str = "CORPD_FBK",
    attrs: dict | None = None,
    encoding_limits: tuple[int, int] | None = None,
) -> Path:
    """Write `kspace` ((S, H, W) single-coil or (S, C, H, W)) in the fastMRI schema.

    encoding_limits (center, maximum) of kspace_encoding_step_1; default (W // 2, W − 1), i.e. no
    padding. With other limits, the columns outside [W//2 − center, W//2 − center + maximum + 1) are
    zeroed (as in real files) before the target is computed. target "rss", "esc" or None (a test file:
    pass `mask`, which is written as bool (W,), and zeros where the mask is 0 in k-space are the
    caller's business).
    """
    path = Path(path)
    k = np.array(kspace, dtype=np.complex64)
    if k.ndim not in (3, 4):
        raise ValueError(f"kspace must be (S, H, W) or (S, C, H, W), got {k.shape}")
    H, W = k.shape[-2:]
    center, maximum = encoding_limits if encoding_limits is not None else (W // 2, W - 1)
    left = W // 2 - center
    right = left + maximum + 1
    k[..., :left] = 0
    k[..., right:] = 0
    all_attrs = {"acquisition": acquisition, "patient_id": f"synthetic-{path.stem}"}
    with h5py.File(path, "w") as f:
        f.create_dataset("kspace", data=k, chunks=(1,) + k.shape[1:])
        f.create_dataset("ismrmrd_header", data=ismrmrd_header((H, W), recon_size, center, maximum))
        if target is not None:
            images = np.abs(ifft2c(k))
            rss = np.sqrt((images**2).sum(axis=1)) if k.ndim == 4 else images
            tgt = center_crop(rss, recon_size).astype(np.float32)
            key = {"rss": "reconstruction_rss", "esc": "reconstruction_esc"}[target]
            f.create_dataset(key, data=tgt)
            all_attrs.update(max=float(tgt.max()), norm=float(np.linalg.norm(tgt)))
        if mask is not None:
            f.create_dataset("mask", data=np.asarray(mask).astype(bool))
        all_attrs.update(attrs or {})
        for key, value in all_attrs.items():
            f.attrs[key] = value
    return path


def make_fastmri_kspace(n_slices: int, n_coils: int, H: int, W: int, seed: int) -> np.ndarray:
    """k-space of MRI phantoms like fastMRI knee data: complex64 (S, C, H, W), or (S, H, W) when
    n_coils == 1 (the single-coil layout).

    The phantom (side min(H // 2, W)) sits centred in an (H, W) field of view, so the readout is
    oversampled ×2 (H = 2h); multi-coil images are weighted by sigpy's birdcage maps; complex Gaussian
    noise with std 1e-3 of the peak image magnitude is added to k-space (orthonormal FFT: the same std
    as in image space).
    """
    side = min(H // 2, W)
    images = np.zeros((n_slices, H, W), np.complex64)
    top, left = (H - side) // 2, (W - side) // 2
    images[:, top:top + side, left:left + side] = mri_phantoms(n_slices, side, seed)
    if n_coils > 1:
        maps = sigpy.mri.birdcage_maps((n_coils, H, W), dtype=np.complex64)
        images = images[:, None] * maps[None]
    rng = np.random.default_rng(seed)
    k = fft2c(images)
    std = 1e-3 * float(np.abs(images).max()) / np.sqrt(2)
    k = k + std * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    return k.astype(np.complex64)
