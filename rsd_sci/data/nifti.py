"""NIfTI volumes (.nii, .nii.gz) <-> stacks of 2-D slices, with the affine and header kept.

A volume is (X, Y, Z) or (X, Y, Z, T) in NIfTI's voxel order (the affine maps voxel (i, j, k) to
scanner millimetres). Slicing along a spatial `axis` gives (S, H, W) with H, W the two other spatial
axes in their original order:

    3-D:  slices[k] = moveaxis(data, axis, 0)[k]                       S = shape[axis]
    4-D:  slices[t · n + k] = volume t, slice k along axis             S = T · n,  n = shape[axis]
          (volume-major: all slices of volume 0, then of volume 1, ...)

`slices_to_volume` is the exact inverse, so read -> slices -> write -> read returns the same voxels and,
when the source header is passed back to `write_nifti`, the same affine bit for bit (nibabel leaves a
header untouched when the affine equals the one it holds).

Example (on your own file):

    vol = read_nifti("t1.nii.gz")
    s = volume_to_slices(vol.data, axis=2)
    write_nifti("out.nii.gz", s, vol.affine, axis=2, header=vol.header)
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from rsd_sci.data.atomic import atomic_path
from rsd_sci.errors import InputError
from rsd_sci.memory_guard import check_fits_in_memory

log = logging.getLogger(__name__)

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass
class NiftiVolume:
    """A NIfTI volume: data float32 (X, Y, Z[, T]), affine float64 (4, 4), header (nibabel)."""

    data: np.ndarray
    affine: np.ndarray
    header: Any


def is_nifti_name(path: str | Path) -> bool:
    """True for names ending in .nii or .nii.gz (case-insensitive)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def read_nifti(path: str | Path) -> NiftiVolume:
    """Read one NIfTI-1/2 file as float32 (scaling slope/intercept applied).

    Trailing length-1 dimensions beyond the third are dropped and a 2-D image becomes (X, Y, 1).
    InputError for: a missing file, a file that is not NIfTI (or is truncated), a NaN/Inf affine, complex
    data, more than 4 dimensions, NaN/Inf values, an all-zero image.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        img = nib.load(path)
    except (nib.filebasedimages.ImageFileError, OSError, EOFError, ValueError, zlib.error) as err:
        raise InputError(path, f"not a NIfTI file ({err})") from None
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        raise InputError(path, f"not a NIfTI file (nibabel reads it as {type(img).__name__})")
    if not np.isfinite(img.affine).all():
        raise InputError(path, "its affine (voxel-to-world matrix) holds NaN or Inf values")
    shape = tuple(int(n) for n in img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 4:
        raise InputError(path, f"has {len(shape)} dimensions (shape {img.shape}); expected 3-D or 4-D")
    if len(shape) < 2:
        raise InputError(path, f"has shape {img.shape}; expected a 2-D, 3-D or 4-D image")
    if np.issubdtype(img.get_data_dtype(), np.complexfloating):
        raise InputError(path, "holds complex values; give magnitude images")
    if 0 in shape:
        raise InputError(path, f"has shape {img.shape}: no voxels")
    check_fits_in_memory(3 * 4 * float(np.prod(shape)), f"its image of shape {shape}", path)   # float32, copies
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile) as err:
        raise InputError(path, f"truncated or unreadable image data ({err})") from None
    data = data.reshape(shape if len(shape) > 2 else shape + (1,))
    if not np.isfinite(data).all():
        raise InputError(path, "holds NaN or Inf values")
    if not data.any():
        raise InputError(path, "image is all zeros")
    return NiftiVolume(data=data, affine=np.array(img.affine, dtype=np.float64), header=img.header)


def _spatial_axis(axis: int) -> int:
    if not -3 <= axis <= 2:
        raise ValueError(f"axis must be a spatial axis 0, 1 or 2, got {axis}")
    return axis % 3


def volume_to_slices(data: np.ndarray, axis: int = 2) -> np.ndarray:
    """(X, Y, Z) -> (S, H, W) along `axis`; (X, Y, Z, T) -> (T·n, H, W), volume-major (see module)."""
    axis = _spatial_axis(axis)
    data = np.asarray(data)
    if data.ndim == 3:
        return np.ascontiguousarray(np.moveaxis(data, axis, 0))
    if data.ndim == 4:
        stacked = np.moveaxis(data, (3, axis), (0, 1))  # (T, n, H, W)
        return np.ascontiguousarray(stacked).reshape((-1,) + stacked.shape[2:])
    raise ValueError(f"expected a 3-D or 4-D volume, got shape {data.shape}")


def slices_to_volume(slices: np.ndarray, axis: int, shape: tuple[int, ...]) -> np.ndarray:
    """The exact inverse of `volume_to_slices`: (S, H, W) -> a volume of `shape` (3 or 4 dims)."""
    axis = _spatial_axis(axis)
    slices = np.asarray(slices)
    shape = tuple(int(n) for n in shape)
    if len(shape) not in (3, 4):
        raise ValueError(f"shape must have 3 or 4 dimensions, got {shape}")
    plane = tuple(n for d, n in enumerate(shape[:3]) if d != axis)
    n_vol = shape[3] if len(shape) == 4 else 1
    expected = (n_vol * shape[axis],) + plane
    if slices.shape != expected:
        raise ValueError(f"slices of shape {slices.shape} do not fit volume {shape} (need {expected})")
    if len(shape) == 3:
        return np.ascontiguousarray(np.moveaxis(slices, 0, axis))
    stacked = slices.reshape((n_vol, shape[axis]) + plane)
    return np.ascontiguousarray(np.moveaxis(stacked, (0, 1), (3, axis)))


def normalize_intensity(slices: np.ndarray, percentile: float = 99.5) -> tuple[np.ndarray, float]:
    """Scale one volume's slices so its robust maximum maps to 1: returns (slices / p, p).

    p = the `percentile`-th percentile of |slices| over the whole volume (all slices together, so the
    relative contrast between slices is kept); if that is 0 (mostly empty volumes), p = max |slices|.
    Values above p exceed 1 (no clipping). ValueError for an all-zero volume.
    """
    slices = np.asarray(slices, dtype=np.float32)
    mag = np.abs(slices)
    p = float(np.percentile(mag, percentile))
    if p <= 0.0:
        p = float(mag.max())
    if p <= 0.0:
        raise ValueError("cannot normalise an all-zero volume")
    return (slices / np.float32(p)).astype(np.float32), p


def _volume_shape(n_slices: int, plane: tuple[int, int], axis: int, header: Any) -> tuple[int, ...]:
    """The volume shape for (S, H, W) slices: the header's 4-D shape when the slices fill it, else
    3-D with S along `axis`."""
    if header is not None:
        hshape = tuple(int(n) for n in header.get_data_shape())
        if len(hshape) >= 4 and hshape[3] > 1 and all(n == 1 for n in hshape[4:]):
            hshape = hshape[:4]
            hplane = tuple(n for d, n in enumerate(hshape[:3]) if d != axis)
            if hplane == tuple(plane) and n_slices == hshape[3] * hshape[axis]:
                return hshape
    shape = list(plane)
    shape.insert(axis, n_slices)
    return tuple(shape)


def write_nifti(
    path: str | Path,
    slices: np.ndarray,
    affine: np.ndarray,
    axis: int = 2,
    header: Any = None,
    overwrite: bool = False,
) -> None:
    """Write (S, H, W) slices as a float32 NIfTI volume, atomically (temporary file, then rename).

    The volume is `slices_to_volume(slices, axis, shape)` with shape 3-D (S along `axis`), or the
    header's 4-D shape when `header` is 4-D and the slices fill it. `header` (e.g. the source's) is
    copied and its data type set to float32; pass the source affine and header to keep both exactly.
    A NIfTI-2 header gives a NIfTI-2 file. InputError if `path` exists (unless `overwrite`) or does
    not end in .nii / .nii.gz.
    """
    path = Path(path)
    if not is_nifti_name(path):
        raise InputError(path, "a NIfTI file name must end in .nii or .nii.gz")
    if path.exists() and not overwrite:
        raise InputError(path, "exists (use --force)")
    slices = np.asarray(slices)
    if slices.ndim != 3 or np.iscomplexobj(slices):
        raise ValueError(f"slices must be real (S, H, W), got {slices.dtype} {slices.shape}")
    axis = _spatial_axis(axis)
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise ValueError(f"affine must be (4, 4), got {affine.shape}")
    shape = _volume_shape(slices.shape[0], slices.shape[1:], axis, header)
    volume = slices_to_volume(slices.astype(np.float32, copy=False), axis, shape)
    image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    hdr = None
    if header is not None:
        hdr = header.copy()
        hdr.set_data_dtype(np.float32)
    image = image_class(volume, affine, header=hdr)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        nib.save(image, tmp)
    log.debug("wrote %s %s", path, volume.shape)
