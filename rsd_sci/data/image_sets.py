"""Image sets as `rsd-sci evaluate --samples/--reference` reads them: float32 images (N, C, H, W).

    .npy        (N, H, W) or (N, C, H, W), read without pickle
    .h5         the first of the datasets SET_KEYS found, same shapes
    .nii(.gz)   a volume (H, W, N) or (H, W, N, C)

Complex values become magnitudes. Anything else (another shape, NaN/Inf, an unknown suffix) is an
`InputError` naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from rsd_sci.data.hdf5_file import open_hdf5
from rsd_sci.data.nifti import read_nifti
from rsd_sci.errors import InputError
from rsd_sci.memory_guard import check_fits_in_memory

SET_KEYS = ("samples", "reconstruction", "targets")  # datasets of an image-set .h5, first found wins


def read_image_set(path: str | Path) -> np.ndarray:
    """Images as float32 (N, C, H, W): .npy (N, H, W) / (N, C, H, W); .h5 dataset samples, reconstruction
    or targets, same shapes; .nii(.gz) volume (H, W, N) or (H, W, N, C). Complex values become magnitudes."""
    path = Path(path)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        data = read_nifti(path).data
        images = data.transpose(2, 0, 1) if data.ndim == 3 else data.transpose(2, 3, 0, 1)
    elif name.endswith(".npy"):
        if not path.is_file():
            raise InputError(path, "no such file")
        images = _read_npy(path)
    elif name.endswith(".h5"):
        with open_hdf5(path) as f:
            key = next((k for k in SET_KEYS if k in f), None)
            if key is None:
                raise InputError(path, f"no {', '.join(repr(k) for k in SET_KEYS)} dataset")
            images = f[key][()]
    else:
        raise InputError(path, "unknown image-set format (expected .npy, .h5, .nii or .nii.gz)")
    images = np.abs(images) if np.iscomplexobj(images) else np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4 or 0 in images.shape or not np.issubdtype(images.dtype, np.number):
        raise InputError(path, f"holds {images.dtype} of shape {images.shape}; expected images (N, H, W) or "
                               "(N, C, H, W)")
    if not np.isfinite(images).all():
        raise InputError(path, "holds NaN or Inf values")
    return np.ascontiguousarray(images, dtype=np.float32)


def _read_npy(path: Path) -> np.ndarray:
    """A .npy array, refused before any allocation when its header declares more than the file holds (a
    damaged or hostile header) or more than fits in memory."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(f)
            needed = f.tell() + math.prod(shape) * dtype.itemsize
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a NumPy array file ({err})") from None
    if not dtype.hasobject and path.stat().st_size < needed:
        raise InputError(path, f"its header declares {dtype} of shape {shape} ({needed / 2**30:,.1f} GiB), "
                               f"but the file holds {path.stat().st_size:,} bytes")
    check_fits_in_memory(3 * 4 * math.prod(shape), f"its images of shape {shape}", path)   # float32, copies
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise InputError(path, f"not a NumPy array file ({err})") from None
