"""Our measurement-set format: one HDF5 file per split, per-sample chunked arrays, read lazily.

A measurement set is a folder with `train.h5`, `test.h5` and `card.yaml` (how it was made). Each split
file holds N samples:

    measurements  (N, ...)           k-space complex64 (N, C, H, W) for MRI; sinograms float32
                                     (N, 1, views, detectors) for CT; images float32 (N, 1, h, w)
    masks         (N, ...) uint8     MRI: line mask (N, W) or 2-D mask (N, H, W); CT: view mask (N, V);
                                     image inpainting: pixel mask (N, 1, H, W); absent otherwise
    centers       (N, ...) uint8     MRI calibration region (never thinned by the further mask)
    coil_maps     (N, C, H, W)       complex64 ESPIRiT maps (multi-coil MRI only)
    scale, offset (N,) float32       the normalisation x' = scale·x + offset of each sample
    sigma_n       (N,) float32       measurement-noise std in normalised units (per real component)
    source        (N,) str           source volume (file name or phantom id)      } for tracing and
    slice_index   (N,) int32         slice within that volume                      } per-volume metrics
    targets       (N, 1, h, w)       clean magnitude (MRI) or image (CT, image) in normalised units:
                                     test.h5 only, for evaluation, never for training

File attributes: `format` ("rsd-sci measurement set"), `version`, `modality`, `operator` (a JSON
operator spec, see `rsd_sci.measurement`), `seed`, `split`.

Example:
    >>> import numpy as np, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with MeasurementSetWriter(os.path.join(d, "x.h5"), modality="image", operator={"family": "image"},
    ...                           split="train", seed=0) as w:
    ...     w.append(measurements=np.zeros((1, 4, 4), np.float32), scale=2.0, offset=-1.0, sigma_n=0.1,
    ...              source="p0", slice_index=0)
    >>> ms = MeasurementSet(os.path.join(d, "x.h5")); len(ms), ms[0]["measurements"].shape
    (1, (1, 4, 4))
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rsd_sci.data.hdf5_file import LazyHDF5
from rsd_sci.errors import InputError

FORMAT = "rsd-sci measurement set"
VERSION = 1
PER_SAMPLE_SCALARS = ("scale", "offset", "sigma_n")
ARRAY_KEYS = ("measurements", "masks", "centers", "coil_maps", "targets")
MASK_KEYS = ("masks", "centers")


class MeasurementSetWriter:
    """Append samples one at a time; arrays are created on the first append, chunked per sample.

    Args:
        path: the .h5 file to write (the caller writes into a temporary folder and renames it).
        modality: "mri", "ct" or "image".
        operator: JSON-serialisable operator spec shared by every sample (per-sample parts are arrays).
        split: "train" or "test".
        seed: the seed the set was made with.
        keep: continue the file an interrupted writer left (`rsd_sci.data.partial_set`): its first `keep`
            samples stay, every dataset is cut back to them, appending continues after them. 0: a new file.
    """

    def __init__(self, path: str | Path, modality: str, operator: dict, split: str, seed: int, keep: int = 0):
        self.path = Path(path)
        self._file = f = h5py.File(self.path, "a" if keep else "w")
        short = [k for k in ("measurements", *f) if keep and (k not in f or f[k].shape[0] < keep)]
        if short:
            f.close()
            raise ValueError(f"{self.path}: {short[0]} holds fewer than the {keep} samples to keep")
        for ds in f.values():
            ds.resize(keep, axis=0)
        f.attrs.update(format=FORMAT, version=VERSION, modality=modality, operator=json.dumps(operator),
                       split=split, seed=seed)
        self._n = keep

    def __len__(self) -> int:
        """The samples in the file so far."""
        return self._n

    def append(self, *, measurements: np.ndarray, scale: float, offset: float, sigma_n: float,
               source: str, slice_index: int, masks: np.ndarray | None = None,
               centers: np.ndarray | None = None, coil_maps: np.ndarray | None = None,
               targets: np.ndarray | None = None) -> None:
        arrays = dict(measurements=measurements, masks=masks, centers=centers, coil_maps=coil_maps,
                      targets=targets)
        for key, value in arrays.items():
            if value is None:
                continue
            value = np.asarray(value, dtype=np.uint8) if key in MASK_KEYS else np.asarray(value)
            self._dataset(key, value.shape, value.dtype)[self._n] = value
        for key, value in dict(scale=scale, offset=offset, sigma_n=sigma_n, slice_index=slice_index).items():
            dtype = np.int32 if key == "slice_index" else np.float32
            self._dataset(key, (), dtype)[self._n] = value
        self._dataset("source", (), h5py.string_dtype())[self._n] = source
        self._n += 1

    def _dataset(self, key: str, shape: tuple, dtype) -> h5py.Dataset:
        if key in self._file:
            ds = self._file[key]
            if ds.shape[1:] != tuple(shape):
                raise ValueError(f"{key}: sample shape {shape} differs from earlier {ds.shape[1:]}")
            if ds.shape[0] <= self._n:
                ds.resize(self._n + 1, axis=0)
            return ds
        return self._file.create_dataset(key, shape=(self._n + 1, *shape), maxshape=(None, *shape),
                                         dtype=dtype, chunks=(1, *shape) if shape else (1024,))

    def sample_shape(self, key: str) -> tuple:
        """The shape of one sample of `key` (e.g. "measurements"); () before the first append."""
        return tuple(self._file[key].shape[1:]) if key in self._file else ()

    def flush(self) -> None:
        """Everything appended so far onto the disk (HDF5's buffers, then the OS's: fsync)."""
        self._file.flush()
        os.fsync(self._file.id.get_vfd_handle())

    def close(self) -> None:
        """Write the sample count, flush and close."""
        self._file.attrs["n_samples"] = self._n
        self.flush()
        self._file.close()

    def __enter__(self) -> "MeasurementSetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class SetInfo:
    """What a split file says about itself (its attributes)."""

    modality: str
    operator: dict
    split: str
    seed: int
    version: int
    n_samples: int


class MeasurementSet(LazyHDF5):
    """Lazy reader of one split file: `len(ms)`, `ms[i]` -> dict of numpy arrays and scalars.

    Opens the file on first access in each process (h5py handles must not cross a fork), so it can be
    used by DataLoader workers.
    """

    def __init__(self, path: str | Path):
        self.path = self._path = Path(path)
        self.info = read_info(self.path)
        self._file = None

    def __len__(self) -> int:
        return self.info.n_samples

    def keys(self) -> list[str]:
        return [k for k in ARRAY_KEYS if k in self._handle()]

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        f = self._handle()
        sample: dict[str, Any] = {k: f[k][i] for k in self.keys()}
        for k in MASK_KEYS:
            if k in sample:
                sample[k] = sample[k].astype(bool)
        for k in PER_SAMPLE_SCALARS:
            sample[k] = float(f[k][i])
        sample["slice_index"] = int(f["slice_index"][i])
        sample["source"] = f["source"][i].decode() if isinstance(f["source"][i], bytes) else str(f["source"][i])
        sample["index"] = i
        return sample

    def column(self, key: str, stop: int | None = None) -> np.ndarray:
        """A per-sample column, whole or its first `stop` rows (one dataset read: scale, offset, sigma_n,
        source, slice_index; the first few targets)."""
        data = self._handle()[key][:stop]
        return np.array([s.decode() for s in data]) if key == "source" else data



def read_info(path: str | Path) -> SetInfo:
    """Validate a split file and read its attributes; InputError if it is not ours."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with h5py.File(path, "r") as f:
            attrs = dict(f.attrs)
            n = int(attrs.get("n_samples", f["measurements"].shape[0] if "measurements" in f else 0))
    except OSError:
        raise InputError(path, "not a readable HDF5 file (truncated or another format)") from None
    if attrs.get("format") != FORMAT:
        raise InputError(path, "not an rsd-sci measurement set (missing 'format' attribute)")
    try:
        version, seed = int(attrs["version"]), int(attrs["seed"])
        operator = json.loads(attrs["operator"])
        modality, split = str(attrs["modality"]), str(attrs["split"])
    except KeyError as err:
        raise InputError(path, f"measurement-set attribute {err} is missing") from None
    except (ValueError, TypeError) as err:   # json.JSONDecodeError is a ValueError
        raise InputError(path, f"a measurement-set attribute is malformed ({type(err).__name__}: "
                               f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not isinstance(operator, dict) or "family" not in operator:
        raise InputError(path, "the 'operator' attribute is not an operator spec (a JSON mapping with 'family')")
    if version > VERSION:
        raise InputError(path, f"measurement-set version {version} is newer than this rsd-sci "
                               f"reads ({VERSION}); upgrade rsd-sci")
    return SetInfo(modality=modality, operator=operator, split=split, seed=seed, version=version, n_samples=n)


def is_measurement_set(folder: str | Path) -> bool:
    """A folder with train.h5 and card.yaml."""
    folder = Path(folder)
    return (folder / "train.h5").is_file() and (folder / "card.yaml").is_file()


def open_measurement_set(folder: str | Path) -> tuple[MeasurementSet, MeasurementSet | None]:
    """(train, test) readers of a measurement-set folder; test is None if absent."""
    folder = Path(folder)
    if not (folder / "train.h5").is_file():
        raise InputError(folder, "not a measurement set (no train.h5)")
    test = MeasurementSet(folder / "test.h5") if (folder / "test.h5").is_file() else None
    return MeasurementSet(folder / "train.h5"), test
