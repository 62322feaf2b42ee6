"""A folder holding one DICOM series (one file per slice) -> a float32 volume, sorted in space.

Values: stored pixels p become  v = p · RescaleSlope + RescaleIntercept  (slope 1 and intercept 0 when
absent), which is Hounsfield units for CT (DICOM PS3.3 C.11.1.1.2; `hounsfield.hu_to_mu` gives
attenuation) and the stored magnitude for MR.

Order: slices are sorted by their position along the slice normal,
    n = row direction × column direction   (ImageOrientationPatient, 6 direction cosines),
    s_k = n · ImagePositionPatient_k,
ascending; when positions or orientation are missing, by InstanceNumber; else by file name.
Spacing (dz, dy, dx) in mm: dz = median |Δs| (else SpacingBetweenSlices, else SliceThickness, else 1),
(dy, dx) = PixelSpacing (row spacing, column spacing; else 1).

One grid: every slice must share ImageOrientationPatient and PixelSpacing (to GEOMETRY_TOLERANCE) and
no two may sit at the same position along the normal; a folder that breaks this (a localiser among
the axials, a reformat, a repeated acquisition) is refused rather than stacked into one volume.

Files that are not DICOM, hold no image (DICOMDIR, reports), or whose pixels cannot be decoded
(compressed without a decoder) are skipped with a log message; multi-frame files are not supported.
pydicom is an optional dependency (`pip install 'rsd-sci[dicom]'`), imported on use.

Example (on your own file):

    vol = read_dicom_series("ct_series/")
    vol.data.shape, vol.modality, vol.spacing
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsd_sci.errors import InputError

log = logging.getLogger(__name__)

INSTALL_HINT = "reading DICOM needs pydicom: pip install 'rsd-sci[dicom]'"
GEOMETRY_TOLERANCE = 1e-3   # direction cosines (unitless) and mm: what counts as the same orientation/spacing


@dataclass
class DicomVolume:
    """data float32 (S, H, W) (HU for CT, magnitude for MR), modality ('CT', 'MR', ...),
    spacing (dz, dy, dx) in mm, positions float64 (S, 3) ImagePositionPatient (NaN where absent)."""

    data: np.ndarray
    modality: str
    spacing: tuple[float, float, float]
    positions: np.ndarray


@dataclass
class _Slice:
    path: Path
    ds: Any
    pixels: np.ndarray


def _floats(value: Any, n: int) -> np.ndarray | None:
    """A multi-valued DICOM number (e.g. ImagePositionPatient) as n floats, or None."""
    if value is None:
        return None
    try:
        out = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if out.shape == (n,) and np.isfinite(out).all() else None


def _number(ds: Any, keyword: str, default: float | None) -> float | None:
    value = ds.get(keyword, None)
    try:
        return default if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return default


def _read_slices(folder: Path, pydicom: Any) -> list[_Slice]:
    """Every readable single-frame image in the folder (not recursive), in file-name order."""
    slices = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        try:
            ds = pydicom.dcmread(path)
        except Exception as err:  # pydicom raises many types for non-DICOM bytes; skip the file
            log.debug("%s: skipped, not DICOM (%s)", path, err)
            continue
        if "PixelData" not in ds:
            log.debug("%s: skipped, no pixel data", path)
            continue
        if int(_number(ds, "NumberOfFrames", 1) or 1) > 1:
            log.warning("%s: skipped, multi-frame DICOM is not supported", path)
            continue
        try:
            pixels = np.asarray(ds.pixel_array)
        except Exception as err:  # missing decoder, truncated pixel data, bad tags
            log.warning("%s: skipped, pixel data cannot be decoded (%s)", path, err)
            continue
        if pixels.ndim != 2:
            log.warning("%s: skipped, not a single-channel 2-D image (shape %s)", path, pixels.shape)
            continue
        slices.append(_Slice(path, ds, pixels))
    return slices


def _sort(slices: list[_Slice]) -> tuple[list[_Slice], np.ndarray | None]:
    """Sort along the slice normal (or by InstanceNumber); also return the sorted positions s_k."""
    orientation = _floats(slices[0].ds.get("ImageOrientationPatient"), 6)
    positions = [_floats(s.ds.get("ImagePositionPatient"), 3) for s in slices]
    if orientation is not None and all(p is not None for p in positions):
        normal = np.cross(orientation[:3], orientation[3:])
        along = np.array([float(normal @ p) for p in positions])
        order = np.argsort(along, kind="stable")
        return [slices[k] for k in order], along[order]
    numbers = [_number(s.ds, "InstanceNumber", None) for s in slices]
    if all(n is not None for n in numbers):
        order = np.argsort(np.array(numbers), kind="stable")
        return [slices[k] for k in order], None
    log.warning("no ImagePositionPatient or InstanceNumber: slices kept in file-name order")
    return slices, None


def _check_one_grid(folder: Path, slices: list[_Slice], along: np.ndarray | None) -> None:
    """InputError unless the (sorted) slices share orientation and pixel spacing and no position repeats."""
    for keyword, n, what in (("ImageOrientationPatient", 6, "orientations"), ("PixelSpacing", 2, "pixel spacings")):
        values = [_floats(s.ds.get(keyword), n) for s in slices]
        known = [v for v in values if v is not None]
        if known and (len(known) < len(values) or any(np.abs(v - known[0]).max() > GEOMETRY_TOLERANCE for v in known)):
            kinds = len({tuple(np.round(v, 3)) for v in known}) + (len(known) < len(values))
            raise InputError(folder, f"its slices have {kinds} different {what} ({keyword}); give one "
                                     "series of parallel slices per folder")
    if along is not None and len(along) > 1 and np.min(np.diff(along)) <= GEOMETRY_TOLERANCE:
        k = int(np.argmin(np.diff(along)))
        raise InputError(folder, f"{slices[k].path.name} and {slices[k + 1].path.name} are at the same slice "
                                 f"position ({along[k]:.4g} mm along the normal); give one acquisition per folder")


def read_dicom_series(folder: str | Path) -> DicomVolume:
    """Read one DICOM series from a folder as a float32 (S, H, W) volume (see the module docstring).

    InputError if pydicom is missing, the folder has no readable image, holds several series, its
    images differ in size or do not lie on one grid, or a rescale makes values that are not finite.
    """
    folder = Path(folder)
    try:
        import pydicom
    except ImportError:
        raise InputError(folder, INSTALL_HINT) from None
    if not folder.is_dir():
        raise InputError(folder, "not a folder (give the folder holding one DICOM series)")
    slices = _read_slices(folder, pydicom)
    if not slices:
        raise InputError(folder, "no readable DICOM image")
    series = Counter(str(s.ds.get("SeriesInstanceUID", "")) for s in slices)
    if len(series) > 1:
        sizes = ", ".join(str(n) for n in series.values())
        raise InputError(folder, f"holds {len(series)} DICOM series ({sizes} images); give one per folder")
    shapes = Counter(s.pixels.shape for s in slices)
    if len(shapes) > 1:
        raise InputError(folder, f"images differ in size: {dict(shapes)}")

    slices, along = _sort(slices)
    _check_one_grid(folder, slices, along)
    data = np.empty((len(slices),) + slices[0].pixels.shape, np.float32)
    for k, s in enumerate(slices):
        slope = _number(s.ds, "RescaleSlope", 1.0)
        intercept = _number(s.ds, "RescaleIntercept", 0.0)
        data[k] = s.pixels.astype(np.float64) * slope + intercept
    if not np.isfinite(data).all():
        raise InputError(folder, "its values are NaN or Inf after RescaleSlope/RescaleIntercept")

    first = slices[0].ds
    pixel_spacing = _floats(first.get("PixelSpacing"), 2)
    dy, dx = (1.0, 1.0) if pixel_spacing is None else (float(pixel_spacing[0]), float(pixel_spacing[1]))
    dz = None
    if along is not None and len(along) > 1:
        dz = float(np.median(np.abs(np.diff(along)))) or None
    if dz is None:
        dz = _number(first, "SpacingBetweenSlices", None) or _number(first, "SliceThickness", None) or 1.0
    positions = np.array(
        [p if (p := _floats(s.ds.get("ImagePositionPatient"), 3)) is not None else np.full(3, np.nan)
         for s in slices]
    )
    modality = str(first.get("Modality", "OT") or "OT")
    log.debug("%s: %d %s slices of %s", folder, len(slices), modality, data.shape[1:])
    return DicomVolume(data=data, modality=modality, spacing=(dz, dy, dx), positions=positions)
