"""DICOM series: a synthetic CT series written with pydicom itself, read back and checked against the
pixels and tags pydicom reads directly."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from rsd_sci.data.dicom import read_dicom_series
from rsd_sci.errors import InputError

import pydicom  # noqa: E402  (the test extra installs it)
from pydicom.dataset import FileDataset, FileMetaDataset  # noqa: E402
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage, generate_uid  # noqa: E402


def _write_slice(path, pixels, *, series, modality="CT", position=None, instance=None,
                 slope=1.0, intercept=-1024.0, orientation=(1, 0, 0, 0, 1, 0), spacing=(0.7, 0.8)):
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.SeriesInstanceUID, ds.StudyInstanceUID = modality, series, "1.2.3"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = 3.0
    if modality == "CT":
        ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if position is not None:
        ds.ImagePositionPatient = list(position)
        ds.ImageOrientationPatient = list(orientation)
    if instance is not None:
        ds.InstanceNumber = instance
    ds.PixelData = pixels.astype(np.int16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _ct_series(folder, n=5, seed=0):
    """n slices at z = 100, 97.5, ... (descending), with scrambled file names and instance numbers."""
    rng = np.random.default_rng(seed)
    series = generate_uid()
    names = rng.permutation(n)
    for k in range(n):
        pixels = rng.integers(0, 2000, (12, 10))
        _write_slice(folder / f"IM{names[k]:04d}", pixels, series=series,
                     position=(-5.0, 3.0, 100.0 - 2.5 * k), instance=int((k * 3) % n) + 1,
                     slope=1.0 + 0.5 * (k == 2))
    return folder


def test_ct_series_sorted_in_hu(tmp_path):
    folder = _ct_series(tmp_path)
    vol = read_dicom_series(folder)
    # the reference: every file read with pydicom directly, sorted by z (the normal of (1,0,0,0,1,0))
    refs = sorted((pydicom.dcmread(p) for p in folder.iterdir()),
                  key=lambda d: float(d.ImagePositionPatient[2]))
    assert vol.modality == "CT" and vol.data.dtype == np.float32 and vol.data.shape == (5, 12, 10)
    for k, ref in enumerate(refs):
        hu = ref.pixel_array * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
        np.testing.assert_array_equal(vol.data[k], hu.astype(np.float32))
        np.testing.assert_array_equal(vol.positions[k], [float(v) for v in ref.ImagePositionPatient])
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.8))
    assert np.all(np.diff(vol.positions[:, 2]) > 0)


def test_oblique_normal_and_instance_fallback(tmp_path):
    # orientation with rows along y and columns along x: normal = y × x = −z, so z descends
    series = generate_uid()
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for k, z in enumerate([10.0, 30.0, 20.0]):
        _write_slice(a / f"{k}.dcm", np.full((4, 4), k), series=series, position=(0, 0, z),
                     orientation=(0, 1, 0, 1, 0, 0))
        _write_slice(b / f"{k}.dcm", np.full((4, 4), k), series=series, instance=[3, 1, 2][k])
    vol = read_dicom_series(a)
    np.testing.assert_array_equal(vol.positions[:, 2], [30.0, 20.0, 10.0])
    np.testing.assert_array_equal(vol.data[:, 0, 0] + 1024, [1, 2, 0])
    vol = read_dicom_series(b)  # no positions: InstanceNumber order, spacing from SliceThickness
    np.testing.assert_array_equal(vol.data[:, 0, 0] + 1024, [1, 2, 0])
    assert vol.spacing[0] == 3.0 and np.isnan(vol.positions).all()


def test_mr_magnitude_and_junk_skipped(tmp_path):
    series = generate_uid()
    for k in range(2):
        _write_slice(tmp_path / f"mr{k}", np.full((6, 6), 100 + k), series=series, modality="MR",
                     position=(0, 0, k))
    (tmp_path / "README.txt").write_text("not dicom")
    vol = read_dicom_series(tmp_path)
    assert vol.modality == "MR"
    np.testing.assert_array_equal(vol.data[:, 0, 0], [100, 101])


def test_bad_folders(tmp_path, monkeypatch):
    (tmp_path / "junk.dcm").write_bytes(b"\0" * 300)
    with pytest.raises(InputError, match="no readable DICOM image"):
        read_dicom_series(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        read_dicom_series(tmp_path / "junk.dcm")
    two = tmp_path / "two"
    two.mkdir()
    _write_slice(two / "a", np.zeros((4, 4)), series=generate_uid(), position=(0, 0, 0))
    _write_slice(two / "b", np.zeros((4, 4)), series=generate_uid(), position=(0, 0, 1))
    with pytest.raises(InputError, match="2 DICOM series"):
        read_dicom_series(two)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # as if pydicom were not installed
    with pytest.raises(InputError, match=r"pip install 'rsd-sci\[dicom\]'"):
        read_dicom_series(tmp_path)


def test_a_rescale_slope_of_nan_is_refused(tmp_path):
    series = generate_uid()
    for k in range(3):
        _write_slice(tmp_path / f"IM{k}", np.ones((8, 8)), series=series, position=(0.0, 0.0, float(k)),
                     slope=float("nan") if k == 1 else 1.0)
    with pytest.raises(InputError, match="NaN or Inf after RescaleSlope"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize("case, says", [("orientation", "2 different orientations"),
                                        ("spacing", "2 different pixel spacings"),
                                        ("position", "at the same slice position")])
def test_slices_that_are_not_one_grid_are_refused(tmp_path, case, says):
    """A localiser among axials, a reformat at another spacing, a repeated acquisition: not one volume."""
    series = generate_uid()
    for k in range(3):
        odd = k == 1
        _write_slice(tmp_path / f"IM{k}", np.full((4, 4), k), series=series,
                     position=(0.0, 0.0, 0.0 if case == "position" and odd else 2.0 * k),
                     orientation=(1, 0, 0, 0, 0, -1) if case == "orientation" and odd else (1, 0, 0, 0, 1, 0),
                     spacing=(0.5, 0.5) if case == "spacing" and odd else (0.7, 0.8))
    with pytest.raises(InputError, match=says):
        read_dicom_series(tmp_path)
