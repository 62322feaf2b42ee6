"""LoDoPaB-CT ground-truth images, read lazily (Leuschner, Schmidt, Otero Baguer & Maass, Sci. Data 2021).

Published facts about the data set (Zenodo record 3384092):
- Ground-truth files are named `ground_truth_{train,validation,test}_NNN.hdf5` (NNN = 000, 001, ...);
  each holds one dataset `data`, float32 (N, 362, 362) with N = 128 per file (the last file of a split
  holds the remainder). Observation files (`observation_*`) hold sinograms from the authors' own
  projector; we read ground truth only and simulate sinograms with our own geometry.
- Images are slices of the LIDC-IDRI chest CTs, resampled to 362 × 362 pixels over a 26 cm × 26 cm
  field of view (pixel size 260/362 ≈ 0.718 mm), stored as linear attenuation normalised by
  μ_max = 81.35858 /m, so values lie in [0, 1]:   μ [1/m] = x · 81.35858,  μ [1/mm] = x · 0.08135858.

Example (on your own file):

    with read_lodopab("ground_truth_test_000.hdf5") as f:
        len(f), f[0].shape                                   # (128, (362, 362))
"""

from __future__ import annotations

import logging
from pathlib import Path

import h5py
import numpy as np

from rsd_sci.data.hdf5_file import LazyHDF5
from rsd_sci.errors import InputError

log = logging.getLogger(__name__)

MU_MAX_PER_M = 81.35858
"""The normalisation of LoDoPaB-CT images: μ = x · MU_MAX_PER_M in 1/m."""
IMAGE_SIZE = 362
"""Published image size in pixels (square)."""
FIELD_OF_VIEW_MM = 260.0
"""Published field of view: 26 cm across the 362 pixels."""
PIXEL_SIZE_MM = FIELD_OF_VIEW_MM / IMAGE_SIZE
SPLITS = ("train", "validation", "test")


def to_mu_per_mm(x: np.ndarray | float) -> np.ndarray:
    """Normalised LoDoPaB values -> attenuation in 1/mm: μ = x · 81.35858 / 1000."""
    return np.asarray(x) * (MU_MAX_PER_M / 1000.0)


class LodopabFile(LazyHDF5):
    """One ground-truth file: `len(f)` images, `f[i]` -> float32 (H, W) (362 × 362 as published).

    Opened once and read one image at a time; picklable (reopened in the receiving process).
    """

    def __init__(self, path: str | Path):
        self._path = Path(path)
        self._file: h5py.File | None = None
        f = self._handle()
        if "data" not in f or not isinstance(f["data"], h5py.Dataset):
            self.close()
            raise InputError(self._path, "no 'data' dataset (not a LoDoPaB-CT ground-truth file)")
        shape = f["data"].shape
        if len(shape) != 3:
            self.close()
            raise InputError(self._path, f"'data' has shape {shape}; expected (N, 362, 362)")
        if f["data"].dtype.kind not in "fiu":
            self.close()
            raise InputError(self._path, f"'data' is {f['data'].dtype}; expected real floats")
        if shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
            log.warning("%s: images are %s, not the published 362 x 362", self._path, shape[1:])
        self._shape = tuple(int(n) for n in shape)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def image_shape(self) -> tuple[int, int]:
        return self._shape[1], self._shape[2]

    def __len__(self) -> int:
        return self._shape[0]

    def __getitem__(self, i: int) -> np.ndarray:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"image {i} out of range for {n} images in {self._path}")
        i = int(i) % n
        try:
            x = np.asarray(self._handle()["data"][i], dtype=np.float32)
        except OSError as err:
            raise InputError(self._path, f"cannot read image {i} ({err})") from None
        if not np.isfinite(x).all():
            raise InputError(self._path, f"image {i} holds NaN or Inf")
        return x

    def __repr__(self) -> str:
        return f"LodopabFile({str(self._path)!r}, {len(self)} images of {self.image_shape})"


def read_lodopab(path: str | Path) -> LodopabFile:
    """Open a LoDoPaB-CT ground-truth file lazily (InputError if unreadable or without `data`)."""
    return LodopabFile(path)


def list_lodopab_files(folder: str | Path, split: str | None = None) -> list[Path]:
    """The folder's `ground_truth_<split>_NNN.hdf5` files, sorted by split then number.

    `split` (train, validation or test) keeps one split; None keeps all. An empty list when there are
    none; InputError if `folder` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    splits = SPLITS if split is None else (split,)
    files: list[Path] = []
    for name in splits:
        matches = [p for p in folder.glob(f"ground_truth_{name}_*.hdf5") if p.is_file()]
        files += sorted(matches, key=lambda p: (len(p.stem), p.stem))
    return files
