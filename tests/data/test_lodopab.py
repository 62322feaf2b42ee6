"""LoDoPaB-CT ground-truth files (written here with h5py in the published layout) and HU conversion."""

from __future__ import annotations

import pickle

import h5py
import numpy as np
import pytest

from rsd_sci.data.hounsfield import MU_WATER, hu_to_mu, mu_to_hu
from rsd_sci.data.lodopab import list_lodopab_files, read_lodopab, to_mu_per_mm
from rsd_sci.errors import InputError


def _ground_truth(path, n=3, size=362, seed=0):
    data = np.random.default_rng(seed).random((n, size, size)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("data", data=data, chunks=(1, size, size))
    return data


def test_read_lazily(tmp_path):
    path = tmp_path / "ground_truth_test_000.hdf5"
    data = _ground_truth(path)
    with read_lodopab(path) as f:
        assert len(f) == 3 and f.image_shape == (362, 362)
        x = f[1]
        assert x.dtype == np.float32 and x.shape == (362, 362)
        np.testing.assert_array_equal(x, data[1])
        np.testing.assert_array_equal(f[-1], data[2])
        with pytest.raises(IndexError):
            f[3]
        clone = pickle.loads(pickle.dumps(f))
        np.testing.assert_array_equal(clone[0], data[0])
        clone.close()


def test_list_files_sorted(tmp_path):
    names = ["ground_truth_train_010.hdf5", "ground_truth_train_002.hdf5", "ground_truth_test_000.hdf5",
             "ground_truth_validation_001.hdf5", "observation_train_000.hdf5", "notes.txt"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    got = [p.name for p in list_lodopab_files(tmp_path)]
    assert got == ["ground_truth_train_002.hdf5", "ground_truth_train_010.hdf5",
                   "ground_truth_validation_001.hdf5", "ground_truth_test_000.hdf5"]
    assert [p.name for p in list_lodopab_files(tmp_path, split="test")] == ["ground_truth_test_000.hdf5"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert list_lodopab_files(empty) == []
    with pytest.raises(InputError, match="not a folder"):
        list_lodopab_files(tmp_path / "notes.txt")


def test_bad_files(tmp_path):
    no_data = tmp_path / "ground_truth_train_000.hdf5"
    with h5py.File(no_data, "w") as f:
        f["kspace"] = np.zeros((1, 4, 4), np.complex64)
    with pytest.raises(InputError, match="no 'data'"):
        read_lodopab(no_data)
    rank = tmp_path / "rank.hdf5"
    with h5py.File(rank, "w") as f:
        f["data"] = np.zeros((362, 362), np.float32)
    with pytest.raises(InputError, match="expected \\(N, 362, 362\\)"):
        read_lodopab(rank)
    text = tmp_path / "text.hdf5"
    text.write_text("nope")
    with pytest.raises(InputError, match="not an HDF5"):
        read_lodopab(text)
    nan = tmp_path / "nan.hdf5"
    with h5py.File(nan, "w") as f:
        f["data"] = np.full((2, 8, 8), np.nan, np.float32)
    with read_lodopab(nan) as f, pytest.raises(InputError, match="NaN"):
        f[0]


def test_units():
    # published: μ_max = 81.35858 /m, so a normalised value of 1 is 0.08135858 /mm
    assert float(to_mu_per_mm(1.0)) == pytest.approx(0.08135858, rel=1e-9)
    np.testing.assert_allclose(to_mu_per_mm(np.array([0.0, 0.5])), [0.0, 0.04067929])
    # NIST XCOM water at 70 keV: about 0.193 /cm
    assert 0.018 < MU_WATER < 0.021
    hu = np.array([-3024.0, -1000.0, -100.0, 0.0, 1000.0], np.float32)
    mu = hu_to_mu(hu)
    assert mu.dtype == np.float32
    np.testing.assert_allclose(mu, [0.0, 0.0, 0.9 * MU_WATER, MU_WATER, 2 * MU_WATER], rtol=1e-6)
    np.testing.assert_allclose(mu_to_hu(mu[1:]), hu[1:], atol=1e-3)
    assert float(mu_to_hu(0.0)) == -1000.0
