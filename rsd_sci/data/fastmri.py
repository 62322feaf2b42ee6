"""fastMRI HDF5 files, read lazily as published, and reconstructions written in the submission format.

The published schema (Zbontar et al. 2018, fastMRI; files such as `file1000001.h5`):

    kspace               complex64  (S, H, W)      single-coil ("singlecoil_*" sets)
                                    (S, C, H, W)   multi-coil; H = readout (oversampled ×2 in knee data,
                                                   e.g. 640), W = phase encoding (e.g. 368)
    reconstruction_rss   float32    (S, h, w)      root-sum-of-squares of ifft2c(kspace), centre-cropped
    reconstruction_esc   float32    (S, h, w)      emulated single-coil target (single-coil sets)
    mask                 (W,)                      sampled columns, test/challenge files only
    ismrmrd_header       bytes                     ISMRMRD XML: encoding/encodedSpace/matrixSize (x, y, z),
                                                   encoding/reconSpace/matrixSize (x = h, y = w),
                                                   encoding/encodingLimits/kspace_encoding_step_1
                                                   (minimum, maximum, center)
    attrs                acquisition, max, norm, patient_id, and in test files acceleration and
                         num_low_frequency

Zero-padding of the phase-encoding axis follows fastMRI's rule: with enc_y the encoded matrix size y and
(center, maximum) from kspace_encoding_step_1,
    padding_left  = enc_y // 2 − center,     padding_right = padding_left + maximum + 1,
columns outside [padding_left, padding_right) were not acquired (they are zeros in the file).

A file is opened once and read one slice at a time, so a data set larger than memory streams. All
malformed input raises `InputError(path, problem)`.

Example (on your own file):

    with FastMRIFile("file1000001.h5") as f:
        k = f.kspace(0)                                 # complex64 (C, H, W)
        t = f.target(0)                                 # float32 (h, w) or None
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rsd_sci.data.atomic import atomic_path
from rsd_sci.data.hdf5_file import LazyHDF5, open_hdf5
from rsd_sci.disk_space import check_free_space
from rsd_sci.errors import InputError

log = logging.getLogger(__name__)

TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")
DEFAULT_RECON_SIZE = (320, 320)


def plain_attrs(attrs: h5py.AttributeManager) -> dict[str, Any]:
    """HDF5 attributes as plain Python values (bytes decoded, numpy scalars unwrapped)."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def parse_ismrmrd_header(xml: bytes | str) -> dict[str, tuple[int, ...] | int | None]:
    """The fields fastMRI uses from an ISMRMRD XML header (namespace-agnostic).

    Returns {"encoded_size": (x, y, z) | None, "recon_size": (x, y, z) | None,
    "step1_center": int | None, "step1_maximum": int | None}; a missing field is None.
    Raises ValueError for text that is not XML.
    """
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as err:
        raise ValueError(f"not XML ({err})") from None

    def number(*names: str) -> int | None:
        node = root.find("/".join(f"{{*}}{n}" for n in names))
        if node is None or node.text is None:
            return None
        try:
            return int(float(node.text.strip()))
        except ValueError:
            return None

    def size(space: str) -> tuple[int, int, int] | None:
        xyz = [number("encoding", space, "matrixSize", a) for a in ("x", "y", "z")]
        if xyz[0] is None or xyz[1] is None:
            return None
        return (xyz[0], xyz[1], 1 if xyz[2] is None else xyz[2])

    limits = ("encoding", "encodingLimits", "kspace_encoding_step_1")
    return {
        "encoded_size": size("encodedSpace"),
        "recon_size": size("reconSpace"),
        "step1_center": number(*limits, "center"),
        "step1_maximum": number(*limits, "maximum"),
    }


class FastMRIFile(LazyHDF5):
    """One fastMRI file, opened lazily; validated on open (HDF5, `kspace` of rank 3 or 4, complex).

    Usable as a context manager; picklable (the HDF5 handle is reopened in the receiving process, so
    it works in DataLoader workers).
    """

    def __init__(self, path: str | Path):
        self._path = Path(path)
        self._file: h5py.File | None = None
        self._mask: np.ndarray | None = None
        self._mask_read = False
        f = self._handle()
        if "kspace" not in f or not isinstance(f["kspace"], h5py.Dataset):
            self.close()
            raise InputError(self._path, "no 'kspace' dataset (not a fastMRI file)")
        shape, dtype = tuple(int(n) for n in f["kspace"].shape), f["kspace"].dtype
        problem = None
        if len(shape) not in (3, 4):
            problem = (f"'kspace' has rank {len(shape)} (shape {shape}); expected (slices, H, W) "
                       "single-coil or (slices, coils, H, W) multi-coil")
        elif not np.issubdtype(dtype, np.complexfloating):
            problem = f"'kspace' is {dtype}, expected complex"
        elif 0 in shape:
            problem = f"'kspace' is empty (shape {shape})"
        if problem is not None:
            self.close()
            raise InputError(self._path, problem)
        self._shape = shape
        self._header = self._read_header(f)
        self._target_key = next((k for k in TARGET_KEYS if k in f), None)

    def __len__(self) -> int:
        return self.num_slices

    def __repr__(self) -> str:
        kind = f"{self.num_coils} coils" if self.multicoil else "single-coil"
        return f"FastMRIFile({str(self._path)!r}, {self.num_slices} slices, {kind}, {self.kspace_shape})"

    def _read_header(self, f: h5py.File) -> dict:
        if "ismrmrd_header" not in f:
            return {}
        raw = f["ismrmrd_header"][()]
        if isinstance(raw, np.ndarray):  # a 1-element array instead of a scalar
            raw = raw.reshape(-1)[0] if raw.size == 1 else raw.tobytes()
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        try:
            return parse_ismrmrd_header(raw)
        except ValueError as err:
            raise InputError(self._path, f"'ismrmrd_header' is {err}") from None

    # -- properties ------------------------------------------------------------------------------
    @property
    def path(self) -> Path:
        return self._path

    @property
    def num_slices(self) -> int:
        return self._shape[0]

    @property
    def multicoil(self) -> bool:
        return len(self._shape) == 4

    @property
    def num_coils(self) -> int:
        """Number of receive coils (1 for single-coil files)."""
        return self._shape[1] if self.multicoil else 1

    @property
    def kspace_shape(self) -> tuple[int, int]:
        """(H, W): readout × phase-encoding size of each k-space slice."""
        return self._shape[-2], self._shape[-1]

    @property
    def recon_size(self) -> tuple[int, int]:
        """(h, w) of the reconstruction: header reconSpace matrixSize (x, y); else the target's shape;
        else (320, 320). fastMRI crops images to this centre region for evaluation."""
        rec = self._header.get("recon_size")
        if rec is not None:
            return rec[0], rec[1]
        if self._target_key is not None:
            shape = self._handle()[self._target_key].shape
            return int(shape[-2]), int(shape[-1])
        return DEFAULT_RECON_SIZE

    @property
    def encoded_size(self) -> tuple[int, int]:
        """(x, y) of header encodedSpace matrixSize; k-space shape (H, W) when there is no header."""
        enc = self._header.get("encoded_size")
        return (enc[0], enc[1]) if enc is not None else self.kspace_shape

    @property
    def padding(self) -> tuple[int, int]:
        """(left, right): acquired phase-encoding columns are [left, right) (fastMRI's rule, above).
        Without a header or encoding limits: (0, W), every column acquired."""
        center = self._header.get("step1_center")
        maximum = self._header.get("step1_maximum")
        enc = self._header.get("encoded_size")
        if center is None or maximum is None or enc is None:
            return 0, self.kspace_shape[1]
        left = enc[1] // 2 - center
        return left, left + maximum + 1

    @property
    def target_key(self) -> str | None:
        """'reconstruction_rss' (preferred) or 'reconstruction_esc', or None (test files)."""
        return self._target_key

    @property
    def attrs(self) -> dict[str, Any]:
        """The file's attributes as plain Python values."""
        return plain_attrs(self._handle().attrs)

    @property
    def mask(self) -> np.ndarray | None:
        """Sampled phase-encoding columns, bool (W,), from the `mask` dataset of test files; else None."""
        if not self._mask_read:
            f = self._handle()
            if "mask" in f:
                mask = np.asarray(f["mask"][()]).reshape(-1)
                if mask.shape != (self.kspace_shape[1],):
                    raise InputError(
                        self._path,
                        f"'mask' has shape {f['mask'].shape}, expected ({self.kspace_shape[1]},)",
                    )
                self._mask = mask != 0
            self._mask_read = True
        return None if self._mask is None else self._mask.copy()

    # -- slices ------------------------------------------------------------------------------------
    def _index(self, i: int) -> int:
        n = self.num_slices
        if not -n <= i < n:
            raise IndexError(f"slice {i} out of range for {n} slices in {self._path}")
        return int(i) % n

    def kspace(self, i: int, check_finite: bool = True) -> np.ndarray:
        """k-space of slice i: complex64 (C, H, W), C = 1 for single-coil. NaN/Inf -> InputError, unless
        check_finite is False (a pass over the whole slice; `data make` checks what it keeps instead)."""
        i = self._index(i)
        try:
            k = np.asarray(self._handle()["kspace"][i])
        except OSError as err:
            raise InputError(self._path, f"cannot read k-space slice {i} ({err})") from None
        k = k.astype(np.complex64, copy=False)
        if not self.multicoil:
            k = k[None]
        if check_finite and not np.isfinite(k.view(np.float32)).all():
            raise InputError(self._path, f"k-space slice {i} holds NaN or Inf")
        return k

    def target(self, i: int) -> np.ndarray | None:
        """Reference image of slice i: float32 (h, w) from `target_key`, or None when there is none."""
        if self._target_key is None:
            return None
        i = self._index(i)
        try:
            t = np.asarray(self._handle()[self._target_key][i], dtype=np.float32)
        except OSError as err:
            raise InputError(self._path, f"cannot read target slice {i} ({err})") from None
        except IndexError:
            raise InputError(self._path, f"'{self._target_key}' has no slice {i}") from None
        return t


def is_fastmri_file(path: str | Path) -> bool:
    """True for a readable HDF5 file holding a `kspace` dataset; never raises."""
    try:
        path = Path(path)
        if not path.is_file() or not h5py.is_hdf5(str(path)):
            return False
        with h5py.File(path, "r") as f:
            return "kspace" in f
    except (OSError, ValueError):
        return False


def write_reconstruction(
    path: str | Path,
    reconstruction: np.ndarray,
    attrs: dict | None = None,
    overwrite: bool = False,
) -> None:
    """Write a volume in fastMRI's submission format: dataset `reconstruction` float32 (S, h, w).

    Written atomically (temporary file, then rename), chunked one slice per chunk. `attrs` become
    HDF5 attributes (None values are skipped). An existing `path` is an InputError unless `overwrite`.
    """
    path = Path(path)
    recon = np.asarray(reconstruction)
    if recon.ndim != 3:
        raise ValueError(f"reconstruction must be (slices, h, w), got shape {recon.shape}")
    if np.iscomplexobj(recon):
        raise ValueError("reconstruction must be real (magnitude images), got complex")
    if path.exists() and not overwrite:
        raise InputError(path, "exists (use --force)")
    recon = recon.astype(np.float32, copy=False)
    check_free_space(path.parent, recon.nbytes, f"writing the reconstruction {recon.shape}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            chunks = (1,) + recon.shape[1:] if recon.size else None
            f.create_dataset("reconstruction", data=recon, chunks=chunks)
            for key, value in (attrs or {}).items():
                if value is not None:
                    f.attrs[key] = value
    log.debug("wrote %s %s", path, recon.shape)


def read_reconstruction(path: str | Path, key: str = "reconstruction") -> np.ndarray:
    """Read a whole reconstruction volume (the submission format, or any dataset `key`); InputError when
    it holds NaN or Inf (the metrics of such a volume would be NaN)."""
    with open_hdf5(path) as f:
        if key not in f or not isinstance(f[key], h5py.Dataset):
            raise InputError(path, f"no '{key}' dataset")
        try:
            volume = f[key][()]
        except OSError as err:
            raise InputError(path, f"cannot read '{key}' ({err})") from None
    if np.issubdtype(np.asarray(volume).dtype, np.number) and not np.isfinite(volume).all():
        bad = sorted({int(i) for i in np.argwhere(~np.isfinite(volume))[:, 0]})
        raise InputError(path, f"'{key}' holds NaN or Inf values (slice(s) {', '.join(map(str, bad[:5]))})")
    return volume
