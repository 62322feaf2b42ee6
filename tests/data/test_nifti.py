"""NIfTI volumes <-> slices, checked against nibabel read directly."""

from __future__ import annotations

import gzip

import h5py
import nibabel as nib
import numpy as np
import pytest

from rsd_sci.data.nifti import (
    normalize_intensity,
    read_nifti,
    slices_to_volume,
    volume_to_slices,
    write_nifti,
)
from rsd_sci.errors import InputError


def _affine(seed: int) -> np.ndarray:
    """An oblique affine whose entries are float32-exact (NIfTI-1 stores the sform in float32)."""
    rng = np.random.default_rng(seed)
    affine = np.eye(4)
    affine[:3, :3] = rng.normal(size=(3, 3))
    affine[:3, 3] = rng.normal(size=3) * 50
    return affine.astype(np.float32).astype(np.float64)


def _save(path, data, affine, scaled=False):
    img = nib.Nifti1Image(data, affine)
    if scaled:
        img.header.set_slope_inter(0.5, 3.0)
    img.set_qform(affine, code=1)
    nib.save(img, path)
    return path


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("ndim", [3, 4])
def test_round_trip_exact(tmp_path, axis, ndim):
    rng = np.random.default_rng(axis + 10 * ndim)
    shape = (6, 7, 5, 3)[:ndim]
    raw = (rng.random(shape) * 1000).astype(np.int16)  # int16 with scaling: read gives float32
    src = _save(tmp_path / "src.nii.gz", raw, _affine(axis), scaled=True)
    reference = nib.load(src)
    vol = read_nifti(src)
    assert vol.data.dtype == np.float32 and vol.data.shape == shape
    np.testing.assert_array_equal(vol.data, reference.get_fdata(dtype=np.float32))
    assert np.array_equal(vol.affine, reference.affine)

    slices = volume_to_slices(vol.data, axis)
    n = shape[axis] * (shape[3] if ndim == 4 else 1)
    assert slices.shape == (n,) + tuple(m for d, m in enumerate(shape[:3]) if d != axis)
    out = tmp_path / "out.nii.gz"
    write_nifti(out, slices, vol.affine, axis=axis, header=vol.header)
    back = nib.load(out)
    assert back.shape == shape
    assert np.array_equal(back.affine, reference.affine)
    np.testing.assert_array_equal(back.get_fdata(dtype=np.float32), reference.get_fdata(dtype=np.float32))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.nii.gz", "src.nii.gz"]


def test_slice_order_documented():
    vol = np.arange(2 * 3 * 4 * 2, dtype=np.float32).reshape(2, 3, 4, 2)
    s = volume_to_slices(vol, axis=2)
    assert s.shape == (8, 2, 3)
    np.testing.assert_array_equal(s[1], vol[:, :, 1, 0])  # volume-major: t = 0 first
    np.testing.assert_array_equal(s[4 + 3], vol[:, :, 3, 1])
    s3 = volume_to_slices(vol[..., 0], axis=1)
    np.testing.assert_array_equal(s3[2], vol[:, 2, :, 0])
    np.testing.assert_array_equal(slices_to_volume(s, 2, vol.shape), vol)
    with pytest.raises(ValueError):
        slices_to_volume(s[:-1], 2, vol.shape)


def test_write_without_header(tmp_path):
    affine = _affine(5)
    slices = np.random.default_rng(0).random((4, 6, 5)).astype(np.float32)
    path = tmp_path / "plain.nii"
    write_nifti(path, slices, affine, axis=0)
    img = nib.load(path)
    assert img.shape == (4, 6, 5) and img.get_data_dtype() == np.float32
    assert np.array_equal(img.affine, affine)
    np.testing.assert_array_equal(np.asarray(img.dataobj), slices)
    with pytest.raises(InputError, match="exists"):
        write_nifti(path, slices, affine, axis=0)
    write_nifti(path, 2 * slices, affine, axis=0, overwrite=True)
    np.testing.assert_array_equal(np.asarray(nib.load(path).dataobj), 2 * slices)
    with pytest.raises(InputError, match=".nii"):
        write_nifti(tmp_path / "x.h5", slices, affine)


def test_normalize_intensity():
    rng = np.random.default_rng(0)
    slices = rng.random((5, 16, 16)).astype(np.float32) * 300
    out, p = normalize_intensity(slices, percentile=99.5)
    assert p == pytest.approx(np.percentile(slices, 99.5))
    np.testing.assert_allclose(out * p, slices, rtol=1e-6)
    assert np.mean(out <= 1.0) == pytest.approx(0.995, abs=0.002)
    sparse = np.zeros((2, 32, 32), np.float32)
    sparse[0, 0, 0] = 4.0  # the percentile is 0: fall back to the maximum
    assert normalize_intensity(sparse)[1] == 4.0


def test_two_d_and_trailing_singletons(tmp_path):
    flat = _save(tmp_path / "flat.nii", np.ones((5, 4), np.float32), np.eye(4))
    assert read_nifti(flat).data.shape == (5, 4, 1)
    padded = _save(tmp_path / "pad.nii", np.ones((5, 4, 3, 1, 1), np.float32), np.eye(4))
    assert read_nifti(padded).data.shape == (5, 4, 3)


def test_bad_inputs(tmp_path):
    five = _save(tmp_path / "five.nii.gz", np.ones((3, 3, 3, 2, 2), np.float32), np.eye(4))
    with pytest.raises(InputError, match="5 dimensions"):
        read_nifti(five)
    zeros = _save(tmp_path / "zero.nii.gz", np.zeros((4, 4, 4), np.float32), np.eye(4))
    with pytest.raises(InputError, match="all zeros"):
        read_nifti(zeros)
    nan = np.ones((4, 4, 4), np.float32)
    nan[1, 2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        read_nifti(_save(tmp_path / "nan.nii.gz", nan, np.eye(4)))
    text = tmp_path / "text.nii.gz"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a NIfTI"):
        read_nifti(text)
    h5 = tmp_path / "data.nii"
    with h5py.File(h5, "w") as f:
        f["x"] = np.ones(3)
    with pytest.raises(InputError, match="not a NIfTI"):
        read_nifti(h5)
    good = _save(tmp_path / "good.nii.gz", np.ones((8, 8, 8), np.float32), np.eye(4))
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(gzip.compress(gzip.decompress(good.read_bytes())[:600]))
    with pytest.raises(InputError):
        read_nifti(cut)
    with pytest.raises(InputError, match="no such file"):
        read_nifti(tmp_path / "missing.nii")
