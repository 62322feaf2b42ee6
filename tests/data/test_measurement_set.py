"""The measurement-set format: what the writer puts on disk (read back with h5py itself) and the lazy reader."""

import json

import h5py
import numpy as np
import pytest

from rsd_sci.data.measurement_set import MeasurementSet, MeasurementSetWriter, open_measurement_set, read_info
from rsd_sci.errors import InputError


def _write(path, n=3):
    rng = np.random.default_rng(0)
    samples = []
    with MeasurementSetWriter(path, modality="mri", operator={"family": "mri", "coils": 2}, split="test",
                              seed=7) as w:
        for i in range(n):
            s = dict(measurements=(rng.standard_normal((2, 8, 6)) + 1j).astype(np.complex64),
                     masks=rng.random(6) > 0.5, centers=np.arange(6) == 3,
                     coil_maps=np.ones((2, 8, 6), np.complex64), targets=rng.random((1, 8, 6)).astype(np.float32),
                     scale=0.5 + i, offset=0.0, sigma_n=0.01 * i, source=f"vol{i // 2}.h5", slice_index=i % 2)
            w.append(**s)
            samples.append(s)
    return samples


def test_writer_layout_read_with_h5py(tmp_path):
    samples = _write(tmp_path / "test.h5")
    with h5py.File(tmp_path / "test.h5", "r") as f:
        assert f.attrs["format"] == "rsd-sci measurement set" and f.attrs["version"] == 1
        assert f.attrs["n_samples"] == 3 and f.attrs["split"] == "test" and f.attrs["seed"] == 7
        assert json.loads(f.attrs["operator"]) == {"family": "mri", "coils": 2}
        assert f["measurements"].shape == (3, 2, 8, 6) and f["measurements"].dtype == np.complex64
        assert f["measurements"].chunks == (1, 2, 8, 6)  # per-sample chunks: lazy reads
        assert f["masks"].dtype == np.uint8
        np.testing.assert_array_equal(f["scale"][:], np.array([0.5, 1.5, 2.5], np.float32))
        np.testing.assert_array_equal(f["measurements"][1], samples[1]["measurements"])
        assert [s.decode() for s in f["source"][:]] == ["vol0.h5", "vol0.h5", "vol1.h5"]


def test_reader_round_trip(tmp_path):
    samples = _write(tmp_path / "test.h5")
    ms = MeasurementSet(tmp_path / "test.h5")
    assert len(ms) == 3 and ms.info.modality == "mri" and ms.info.operator["coils"] == 2
    s = ms[2]
    np.testing.assert_array_equal(s["measurements"], samples[2]["measurements"])
    np.testing.assert_array_equal(s["masks"], samples[2]["masks"])
    assert s["masks"].dtype == bool
    assert s["scale"] == pytest.approx(2.5) and s["sigma_n"] == pytest.approx(0.02)
    assert s["source"] == "vol1.h5" and s["slice_index"] == 0 and s["index"] == 2
    with pytest.raises(IndexError):
        ms[3]


def test_reader_survives_pickling(tmp_path):
    import pickle

    _write(tmp_path / "test.h5")
    ms = MeasurementSet(tmp_path / "test.h5")
    ms[0]
    clone = pickle.loads(pickle.dumps(ms))  # what a DataLoader worker receives
    np.testing.assert_array_equal(clone[1]["measurements"], ms[1]["measurements"])


def test_not_ours_is_a_clear_error(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(InputError, match="not an rsd-sci measurement set"):
        read_info(tmp_path / "other.h5")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(InputError, match="not a readable HDF5"):
        read_info(tmp_path / "junk.h5")
    with pytest.raises(InputError, match="no train.h5"):
        open_measurement_set(tmp_path)


def test_shape_change_is_refused(tmp_path):
    with MeasurementSetWriter(tmp_path / "x.h5", "image", {"family": "image"}, "train", 0) as w:
        w.append(measurements=np.zeros((1, 4, 4), np.float32), scale=1, offset=0, sigma_n=0, source="a",
                 slice_index=0)
        with pytest.raises(ValueError, match="differs"):
            w.append(measurements=np.zeros((1, 5, 4), np.float32), scale=1, offset=0, sigma_n=0, source="a",
                     slice_index=1)
