"""Where clean images or raw k-space come from: phantoms or files, as volumes of slices, split by volume.

A `Volume` is a named stack of slices read lazily (`volume.read(i)` -> `SourceSlice`); its name seeds
its mask (fastMRI's rule: all slices of a volume share one mask). File sources are split by volume so
no volume is in both splits; or the user names the test files (`--test-input`, e.g. fastMRI's val).

Per source and modality, what a slice holds:
    phantom   mri: complex image (H, W) | ct: attenuation μ (N, N) 1/mm | image: magnitude in [0, 1]
    fastmri   mri: raw k-space (C, H, W) with the file's recon size, target and mask
    nifti     mri: magnitude with a smooth random phase | ct: HU -> μ | image: magnitude in [0, 1]
    lodopab   ct: μ from the normalised ground truth
    dicom     as nifti (CT series in HU, MR series magnitude)
"""

from __future__ import annotations

import functools
import itertools
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from scipy import ndimage

from rsd_sci.data import phantoms
from rsd_sci.errors import InputError

SOURCES = ("phantom", "fastmri", "nifti", "lodopab", "dicom")
SOURCE_MODALITIES = {"phantom": ("mri", "ct", "image"), "fastmri": ("mri",), "nifti": ("mri", "ct", "image"),
                     "lodopab": ("ct",), "dicom": ("mri", "ct", "image")}


@dataclass
class SourceSlice:
    image: np.ndarray | None = None         # clean image (see module docstring)
    kspace: np.ndarray | None = None        # raw k-space (C, H, W), fastMRI only
    recon_size: tuple[int, int] | None = None
    file_mask: np.ndarray | None = None     # an undersampled file's own mask (W,)
    multicoil: bool = False


@dataclass
class Volume:
    """A volume's slices first .. first + n_slices − 1 (a block of a file, or all of it), read by index."""

    name: str
    n_slices: int
    read: Callable[[int], SourceSlice]
    first: int = 0

    def indices(self) -> range:
        return range(self.first, self.first + self.n_slices)


def name_seed(name: str) -> int:
    """A stable integer seed from a volume name (for view masks, phases and noise)."""
    return zlib.crc32(name.encode())


def phantom_volumes(modality: str, n: int, size: int, seed: int, split: str) -> list[Volume]:
    """Each phantom is its own one-slice volume. Train uses seed 2s, test 2s + 1 (disjoint streams)."""
    stream = 2 * seed + (split == "test")
    if modality == "mri":
        images = phantoms.mri_phantoms(n, size, stream)
    elif modality == "ct":
        images = phantoms.ct_phantoms(n, size, stream)
    else:
        images = phantoms.image_phantoms(n, size, stream)[:, 0]
    return [Volume(f"phantom-{split}-{i:05d}", 1, lambda _, im=im: SourceSlice(image=im))
            for i, im in enumerate(images)]


def list_files(source: str, path: Path) -> list[Path]:
    """The source files (or DICOM series folders) under `path`, sorted; InputError if none."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    patterns = {"fastmri": ("*.h5",), "nifti": ("*.nii", "*.nii.gz"), "lodopab": ("ground_truth_*.hdf5",)}
    if source == "dicom":
        files = dicom_folders(path)
    elif path.is_file():
        files = [path]
    else:
        files = sorted({p for pat in patterns[source] for p in path.glob(pat)})
    if not files:
        raise InputError(path, f"no usable {source} files found")
    return files


def is_dicom_file(path: Path) -> bool:
    """A DICOM Part 10 file: 'DICM' at byte 128 (file names often have no extension)."""
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False


def dicom_folders(root: Path) -> list[Path]:
    """The folders under `root` (itself included) holding DICOM files: one series each."""
    root = Path(root)
    folders = [root, *sorted(p for p in root.rglob("*") if p.is_dir())] if root.is_dir() else [root.parent]
    return [d for d in folders if any(is_dicom_file(f) for f in d.iterdir() if f.is_file())]


def file_volumes(source: str, modality: str, files: list[Path], size: int | None) -> list[Volume]:
    """The files as lazily read volumes; InputError naming a file that holds no slice."""
    volumes = [_file_volume(source, modality, f, size) for f in files]
    for path, volume in zip(files, volumes):
        if volume.n_slices < 1:
            raise InputError(path, "holds no slices")
    return volumes


def _file_volume(source: str, modality: str, path: Path, size: int | None) -> Volume:
    """A lazily read file volume: no handle is kept open, and at most two volumes' slices are cached."""
    name = path.name
    if source == "fastmri":
        from rsd_sci.data.fastmri import FastMRIFile

        with FastMRIFile(path) as f:
            n = f.num_slices

        def read_kspace(i: int) -> SourceSlice:
            with FastMRIFile(path) as f:
                # finiteness is checked on the prepared sample (`make._from_file_kspace`), not here
                return SourceSlice(kspace=f.kspace(i, check_finite=False), recon_size=tuple(f.recon_size),
                                   file_mask=f.mask, multicoil=f.multicoil)

        return Volume(name, n, read_kspace)
    if source == "lodopab":
        from rsd_sci.data.lodopab import read_lodopab, to_mu_per_mm

        with read_lodopab(path) as data:
            n = len(data)

        def read_lodopab_slice(i: int) -> SourceSlice:
            with read_lodopab(path) as data:
                return SourceSlice(image=_fit(to_mu_per_mm(data[i]), size))

        return Volume(name, n, read_lodopab_slice)
    n = _count_slices(source, path)
    return Volume(name, n, lambda i: SourceSlice(image=_image_slices(source, modality, path, size)[i]))


def _count_slices(source: str, path: Path) -> int:
    if source == "nifti":  # from the header alone; the data are read (and validated) on first use
        import nibabel as nib

        try:
            shape = nib.load(path).shape
        except Exception as e:  # nibabel raises several types for unreadable files
            raise InputError(path, f"not a readable NIfTI file ({type(e).__name__})") from None
        return int(np.prod(shape[2:])) if len(shape) >= 3 else 1
    return len(_read_volume_slices(source, path)[0])


@functools.lru_cache(maxsize=2)
def _image_slices(source: str, modality: str, path: Path, size: int | None) -> list[np.ndarray]:
    """Every slice of one volume, converted for the modality (cached: slices are read in order)."""
    slices, is_hu = _read_volume_slices(source, path)
    if modality == "ct":
        if not is_hu:
            raise InputError(path, "CT needs Hounsfield units (a CT NIfTI or DICOM series)")
        from rsd_sci.data.hounsfield import hu_to_mu

        return [_fit(hu_to_mu(s), size) for s in slices]
    from rsd_sci.data.nifti import normalize_intensity

    magnitudes, _ = normalize_intensity(np.abs(slices))
    magnitudes = np.clip(magnitudes, 0.0, None)
    if modality == "image":
        return [np.clip(_fit(m, size), 0, 1) for m in magnitudes]
    return [_with_phase(_fit(m, size), path.name, i) for i, m in enumerate(magnitudes)]


def _read_volume_slices(source: str, path: Path) -> tuple[np.ndarray, bool]:
    """(slices (S, H, W) float32, whether the values are Hounsfield units)."""
    if source == "nifti":
        from rsd_sci.data.nifti import read_nifti, volume_to_slices

        data = volume_to_slices(read_nifti(path).data, axis=2)
        return data, bool(data.min() < -500)  # a CT in HU has air near -1000; MR magnitudes are >= 0
    from rsd_sci.data.dicom import read_dicom_series

    vol = read_dicom_series(path)
    return vol.data, vol.modality.upper() == "CT"


def _with_phase(magnitude: np.ndarray, name: str, i: int) -> np.ndarray:
    """A magnitude source gets a smooth random phase so its k-space is not Hermitian-symmetric."""
    rng = np.random.default_rng((name_seed(name), i))
    return (magnitude * np.exp(1j * phantoms.smooth_phase(magnitude.shape, rng))).astype(np.complex64)


def _fit(image: np.ndarray, size: int | None) -> np.ndarray:
    """Zero-pad to a square (centred), then resample to size × size (linear) if a size is given."""
    h, w = image.shape
    n = max(h, w)
    square = np.zeros((n, n), np.float32)
    top, left = (n - h) // 2, (n - w) // 2
    square[top:top + h, left:left + w] = image
    if size is None or size == n:
        return square
    return ndimage.zoom(square, size / n, order=1, grid_mode=True, mode="grid-constant").astype(np.float32)


GUARD_SLICES = 2  # slices dropped on each side of a cut through one volume (neighbours look alike)


def split_volumes(volumes: list[Volume], test_fraction: float, seed: int) -> tuple[list[Volume], list[Volume], str]:
    """Split by volume (never a volume in both): a seeded shuffle, at least one test volume. One volume
    alone is split by slices instead (`split_slices`). Returns (train, test, how: "volumes" or
    "slices of one volume")."""
    if len(volumes) == 1:
        train, test = split_slices(volumes[0], test_fraction)
        return train, test, "slices of one volume"
    if not volumes:
        raise InputError(None, "no volumes found")
    order = np.random.default_rng(seed).permutation(len(volumes))
    n_test = min(len(volumes) - 1, max(1, round(test_fraction * len(volumes))))
    test = sorted(order[:n_test].tolist())
    train = sorted(order[n_test:].tolist())
    return [volumes[i] for i in train], [volumes[i] for i in test], "volumes"


def split_slices(vol: Volume, test_fraction: float) -> tuple[list[Volume], list[Volume]]:
    """One volume of n slices: the test block is the central round(test_fraction·n) slices (at least 1),
    train the slices before and after it, GUARD_SLICES dropped on each side of both cuts:
        train [0, a − g) ∪ [b + g, n),  test [a, b),  a = (n − n_test) // 2,  b = a + n_test.
    A volume too short to leave a training slice is refused, naming the fewest slices that would."""
    n = vol.n_slices
    (a, b), blocks = _one_volume_split(n, test_fraction)
    if not blocks:
        fewest = next(m for m in itertools.count(n + 1) if _one_volume_split(m, test_fraction)[1])
        raise InputError(vol.name, f"has {n} slice(s): splitting one volume into train and test, with "
                                   f"{GUARD_SLICES} slices dropped on each side of the test block, needs at "
                                   f"least {fewest} (or give --test-input)")
    train = [Volume(vol.name, hi - lo, vol.read, vol.first + lo) for lo, hi in blocks]
    return train, [Volume(vol.name, b - a, vol.read, vol.first + a)]


def _one_volume_split(n: int, test_fraction: float) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """`split_slices`' test block [a, b) of n slices and its non-empty training blocks [lo, hi).

        >>> _one_volume_split(4, 0.2), _one_volume_split(6, 0.2)
        (((1, 2), []), ((2, 3), [(5, 6)]))
    """
    n_test = max(1, round(test_fraction * n))
    a = (n - n_test) // 2
    b = a + n_test
    blocks = [(0, a - GUARD_SLICES), (b + GUARD_SLICES, n)]
    return (a, b), [(lo, hi) for lo, hi in blocks if hi > lo]
