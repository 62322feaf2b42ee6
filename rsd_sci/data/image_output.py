"""Generated samples -> files: NIfTI, HDF5, NumPy or a PNG grid, chosen by the file name.

`rsd-sci sample` hands over real images (N, H, W), or complex images as two channels (N, 2, H, W) =
(real, imaginary). All formats store float32 values, except PNG (8-bit grey, for looking at):

    .nii.gz / .nii  one volume (H, W, N), slice k = images[k]; complex: 4-D (H, W, N, 2), last axis
                    (real, imaginary). Identity affine: generated images have no scanner geometry.
                    split=True: one file per image, <stem>_0000.nii.gz, <stem>_0001.nii.gz, ... each a
                    2-D (H, W) NIfTI (nibabel reads and writes 2-D files as they are); complex (H, W, 1, 2).
    .h5             dataset `samples` (N, H, W) / (N, 2, H, W), chunked per sample; `metadata` (if given)
                    as JSON in the file attribute `metadata`. Only this format stores `metadata`.
    .npy            the array (N, H, W) / (N, 2, H, W).
    .png            a grid of ceil(sqrt(N)) columns, row-major, 2-pixel black gaps between tiles;
                    complex images show their magnitude sqrt(re² + im²). One grey window for the whole
                    stack: lo = min(0, 0.5th percentile), hi = 99.5th percentile (a few hot pixels do not
                    dim every image; zero stays black for non-negative images). split=True: one PNG per
                    image, <stem>_0000.png, ..., with the same shared window.

Every check (format, shape, finite values, existing files) runs before the first byte is written, and
every file is written under a temporary sibling name, then renamed (`atomic_path`).

>>> import tempfile, pathlib, nibabel
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> images = np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5)
>>> nibabel.load(write_samples(d / "s.nii.gz", images)[0]).shape
(4, 5, 3)
>>> [p.name for p in write_samples(d / "s.png", images, split=True)]
['s_0000.png', 's_0001.png', 's_0002.png']
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
from pathlib import Path

import numpy as np

from rsd_sci.data.atomic import atomic_path
from rsd_sci.data.output_guard import check_outputs
from rsd_sci.disk_space import check_free_space
from rsd_sci.errors import InputError

SAMPLE_SUFFIXES = (".nii.gz", ".nii", ".h5", ".npy", ".png")
NIFTI1_MAX_SLICES = 32767   # a NIfTI-1 header's dimensions are int16
_KINDS = {".nii.gz": "nifti", ".nii": "nifti", ".h5": "h5", ".npy": "npy", ".png": "png"}
_GAP = 2  # pixels of black between the tiles of a PNG grid
_WINDOW_PERCENTILES = (0.5, 99.5)  # PNG grey window: lo = min(0, 0.5th), hi = 99.5th percentile


def _split_suffix(path: str | Path) -> tuple[str, str]:
    """'out/s.NII.gz' -> ('s', '.NII.gz') (case kept); InputError for a name with no known suffix."""
    name = Path(path).name
    for suffix in SAMPLE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)], name[-len(suffix):]
    found = Path(path).suffix or "(none)"
    raise InputError(path, f"unknown output format {found} (expected .nii.gz, .nii, .h5, .npy or .png)")


def output_kind(path: str | Path) -> str:
    """'nifti' | 'h5' | 'npy' | 'png' from the file name (case-insensitive); InputError otherwise.

    >>> output_kind("samples.NII.GZ"), output_kind("grid.png")
    ('nifti', 'png')
    """
    return _KINDS[_split_suffix(path)[1].lower()]


def _as_samples(path: str | Path, images: np.ndarray) -> np.ndarray:
    """Check (N, H, W) or (N, 2, H, W), N >= 1, real and finite; return it as float32."""
    images = np.asarray(images)
    if np.iscomplexobj(images):
        raise InputError(path, "complex samples must be passed as (N, 2, H, W) real and imaginary channels")
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[1] == 2)):
        raise InputError(path, f"samples must be (N, H, W) or (N, 2, H, W), got shape {images.shape}")
    if images.size == 0:
        raise InputError(path, f"no samples to write (shape {images.shape})")
    with np.errstate(over="ignore"):  # beyond float32's range becomes Inf, refused just below
        samples = images.astype(np.float32)
    if not np.isfinite(samples).all():
        raise InputError(path, "samples contain NaN or Inf values")
    return samples


def _nifti_volume(group: np.ndarray, split: bool) -> np.ndarray:
    """(n, H, W) -> (H, W, n), or (H, W) for one split image; (n, 2, H, W) -> (H, W, n, 2)."""
    if group.ndim == 4:
        return group.transpose(2, 3, 0, 1)
    return group[0] if split else group.transpose(1, 2, 0)


def _write_nifti(path: Path, volume: np.ndarray) -> None:
    """Write a float32 NIfTI-1 file with an identity affine, gzipped for names ending in .gz.

    The bytes come from nibabel (`to_bytes`) rather than `nib.save`, which rewrites a mixed-case
    suffix such as '.Nii.gz' to lower case and so would write beside the temporary name.
    """
    import nibabel as nib

    data = nib.Nifti1Image(volume, np.eye(4)).to_bytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(data, compresslevel=1) if path.name.lower().endswith(".gz") else data)


def _write_h5(path: Path, samples: np.ndarray, metadata: dict | None) -> None:
    """Dataset `samples` chunked per sample; `metadata` as a JSON string attribute."""
    import h5py

    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("samples", data=samples, chunks=(1, *samples.shape[1:]))
        if metadata is not None:
            f.attrs["metadata"] = json.dumps(metadata)


def _grey_grid(images: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(n, H, W) -> uint8 (rows·H + 2(rows-1), cols·W + 2(cols-1)), cols = ceil(sqrt(n)), row-major."""
    n, h, w = images.shape
    cols = math.isqrt(n - 1) + 1  # ceil(sqrt(n)) in exact integer arithmetic
    rows = math.ceil(n / cols)
    grey = np.round(np.clip((images - lo) / (hi - lo), 0.0, 1.0) * 255).astype(np.uint8)
    grid = np.zeros((rows * (h + _GAP) - _GAP, cols * (w + _GAP) - _GAP), np.uint8)
    for k in range(n):
        r, c = divmod(k, cols)
        grid[r * (h + _GAP): r * (h + _GAP) + h, c * (w + _GAP): c * (w + _GAP) + w] = grey[k]
    return grid


def write_samples(
    path: str | Path,
    images: np.ndarray,
    *,
    split: bool = False,  # one file per image (NIfTI and PNG only): <stem>_0000<suffix>, ...
    metadata: dict | None = None,  # JSON-serialisable; stored in .h5 output only
    overwrite: bool = False,  # replace existing files (the CLI's --force)
) -> list[Path]:
    """Write images (N, H, W) real, or (N, 2, H, W) = (real, imaginary), to `path`; return the files.

    The format follows the name (see the module docstring). InputError, before anything is written,
    for: an unknown suffix, `split` with .h5 or .npy, a bad shape, N = 0, NaN or Inf values, or a
    target that exists (unless `overwrite`). The parent folder is created if needed.
    """
    kind = output_kind(path)
    samples = _as_samples(path, images)
    targets = output_targets(path, len(samples), split, overwrite)
    path = Path(path)
    if kind != "png":   # a grey-level grid is far smaller than the floats; its writer fails cleanly
        check_free_space(path.parent, samples.nbytes, f"writing {len(samples)} samples")
    path.parent.mkdir(parents=True, exist_ok=True)

    if kind == "h5":
        _write_h5(path, samples, metadata)
    elif kind == "npy":
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, samples)
    elif kind == "nifti":
        with _all_or_none() as written:
            for k, target in enumerate(targets):
                _write_nifti(target, _nifti_volume(samples[k: k + 1] if split else samples, split))
                written.append(target)
    else:
        from matplotlib.image import imsave

        magnitude = np.hypot(samples[:, 0], samples[:, 1]) if samples.ndim == 4 else samples
        low, high = np.percentile(magnitude, _WINDOW_PERCENTILES)
        lo = min(0.0, float(low))
        hi = float(high) if high > lo else lo + 1.0  # all values equal lo: black
        with _all_or_none() as written:
            for k, target in enumerate(targets):
                shown = magnitude[k: k + 1] if split else magnitude
                with atomic_path(target) as tmp:
                    imsave(tmp, _grey_grid(shown, lo, hi), cmap="gray", vmin=0, vmax=255, format="png")
                written.append(target)
    return targets


def output_targets(path: str | Path, n: int, split: bool = False, overwrite: bool = False,
                   inputs: dict[str, str | Path | None] | None = None) -> list[Path]:
    """The files that writing n samples to `path` makes (with `split`: <stem>_0000<suffix>, ...);
    InputError for a bad suffix, `split` with .h5/.npy, more images than one NIfTI-1 volume holds, a
    target that is a folder, one that is (or lies in) one of `inputs` (`check_outputs`, `overwrite` or
    not), or one that exists (unless `overwrite`).
    The CLI calls it before sampling, so nothing is computed for a refused output."""
    kind = output_kind(path)
    if split and kind in ("h5", "npy"):
        raise InputError(path, "--split applies to NIfTI and PNG output only")
    if kind == "nifti" and not split and n > NIFTI1_MAX_SLICES:
        raise InputError(path, f"{n} images do not fit in one NIfTI-1 volume (at most {NIFTI1_MAX_SLICES} "
                               "slices): use --split, or .h5 or .npy output")
    path = Path(path)
    if split:
        stem, suffix = _split_suffix(path)
        targets = [path.with_name(f"{stem}_{k:04d}{suffix}") for k in range(n)]
    else:
        targets = [path]
    check_outputs(targets, inputs or {})
    for target in targets:
        if target.is_dir():
            raise InputError(target, "is a folder, not a file")
        if target.exists() and not overwrite:
            raise InputError(target, "exists; pass --force to overwrite")
    return targets


@contextlib.contextmanager
def _all_or_none():
    """Several files written as one output: the block appends each file it finished to the list it is
    given; when a later one fails (a full disk, Ctrl-C), those go too."""
    written: list[Path] = []
    try:
        yield written
    except BaseException:
        for target in written:
            target.unlink(missing_ok=True)
        raise
