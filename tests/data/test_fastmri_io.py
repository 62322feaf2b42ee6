"""fastMRI HDF5 reading/writing and atomic writes, checked against h5py read directly and against the
fastmri package (its ifft2c / rss / center_crop and its own header parser) where it is installed."""

from __future__ import annotations

import importlib
import pickle
import sys
import types

import h5py
import numpy as np
import pytest
from tests.support.fastmri_schema import ifft2c, make_fastmri_kspace, write_fastmri_file

from rsd_sci.data.atomic import atomic_path, replace_dir
from rsd_sci.data.fastmri import (
    FastMRIFile,
    is_fastmri_file,
    read_reconstruction,
    write_reconstruction,
)
from rsd_sci.errors import InputError


def _fastmri(monkeypatch, module: str):
    """Import a fastmri submodule; fastmri.data imports pandas/requests at module level for features
    we do not use, so stub them when they are not installed (only for this import)."""
    importlib.import_module("fastmri")  # the test reference (installed by scripts/setup.sh --test)
    for name in ("pandas", "requests"):
        try:
            importlib.import_module(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.__getattr__ = lambda attr: object  # type annotations such as pd.Series
            monkeypatch.setitem(sys.modules, name, stub)
    return importlib.import_module(module)


@pytest.fixture(scope="module")
def multicoil(tmp_path_factory):
    k = make_fastmri_kspace(n_slices=3, n_coils=4, H=64, W=36, seed=0)
    path = tmp_path_factory.mktemp("mc") / "file_mc.h5"
    write_fastmri_file(path, k, recon_size=(32, 32), target="rss", attrs={"norm": 1.5})
    return path, k


def test_multicoil_round_trip(multicoil):
    path, k = multicoil
    with FastMRIFile(path) as f, h5py.File(path, "r") as raw:
        assert (f.num_slices, f.multicoil, f.num_coils, len(f)) == (3, True, 4, 3)
        assert f.kspace_shape == (64, 36)
        assert f.recon_size == (32, 32)
        assert f.encoded_size == (64, 36)
        assert f.padding == (0, 36)
        assert f.target_key == "reconstruction_rss"
        assert f.mask is None
        attrs = f.attrs
        assert attrs["acquisition"] == "CORPD_FBK" and attrs["norm"] == 1.5
        assert attrs["max"] == pytest.approx(float(raw["reconstruction_rss"][()].max()))
        for i in range(3):
            got = f.kspace(i)
            assert got.dtype == np.complex64 and got.shape == (4, 64, 36)
            np.testing.assert_array_equal(got, raw["kspace"][i])
            t = f.target(i)
            assert t.dtype == np.float32 and t.shape == (32, 32)
            np.testing.assert_array_equal(t, raw["reconstruction_rss"][i])
        np.testing.assert_array_equal(f.kspace(-1), raw["kspace"][2])
        with pytest.raises(IndexError):
            f.kspace(3)


def test_target_matches_fastmri_package(multicoil, monkeypatch):
    """The target read back equals fastMRI's own recipe applied to the k-space read back."""
    path, _ = multicoil
    fm = _fastmri(monkeypatch, "fastmri")
    transforms = _fastmri(monkeypatch, "fastmri.data.transforms")
    with FastMRIFile(path) as f:
        for i in range(f.num_slices):
            image = fm.ifft2c(transforms.to_tensor(f.kspace(i)))  # (C, H, W, 2)
            rss = fm.rss(fm.complex_abs(image), dim=0)
            expected = transforms.center_crop(rss, f.recon_size).numpy()
            np.testing.assert_allclose(f.target(i), expected, rtol=1e-4, atol=1e-6 * expected.max())


def test_header_padding_matches_fastmri_parser(tmp_path, monkeypatch):
    k = make_fastmri_kspace(2, 2, 48, 40, seed=1)
    path = write_fastmri_file(tmp_path / "pad.h5", k, recon_size=(24, 24), encoding_limits=(17, 33))
    mri_data = _fastmri(monkeypatch, "fastmri.data.mri_data")
    meta, num_slices = mri_data.SliceDataset._retrieve_metadata(None, path)
    with FastMRIFile(path) as f:
        assert f.padding == (meta["padding_left"], meta["padding_right"]) == (3, 37)
        assert f.recon_size == tuple(meta["recon_size"][:2])
        assert f.encoded_size == tuple(meta["encoding_size"][:2])
        assert f.num_slices == num_slices
        assert not f.kspace(0)[..., :3].any() and not f.kspace(0)[..., 37:].any()


def test_single_coil_esc(tmp_path):
    k = make_fastmri_kspace(2, 1, 40, 24, seed=2)
    assert k.shape == (2, 40, 24)
    path = write_fastmri_file(tmp_path / "sc.h5", k, recon_size=(20, 20), target="esc")
    with FastMRIFile(path) as f:
        assert (f.multicoil, f.num_coils, f.target_key) == (False, 1, "reconstruction_esc")
        got = f.kspace(1)
        assert got.shape == (1, 40, 24)
        np.testing.assert_array_equal(got[0], k[1])
        expected = np.abs(ifft2c(k[1]))[10:30, 2:22]  # centre crop (40−20)//2, (24−20)//2
        np.testing.assert_allclose(f.target(1), expected, rtol=1e-5, atol=1e-7)


def test_test_file_with_mask(tmp_path):
    k = make_fastmri_kspace(2, 3, 32, 20, seed=3)
    mask = np.zeros(20, bool)
    mask[[0, 5, 8, 9, 10, 11, 15]] = True
    path = write_fastmri_file(tmp_path / "test.h5", k * mask, recon_size=(16, 16), target=None,
                              mask=mask, attrs={"acceleration": 4, "num_low_frequency": 4})
    with FastMRIFile(path) as f:
        assert f.target_key is None and f.target(0) is None
        assert f.mask.dtype == bool
        np.testing.assert_array_equal(f.mask, mask)
        assert f.attrs["acceleration"] == 4 and f.attrs["num_low_frequency"] == 4


def test_no_header_fallbacks(tmp_path):
    path = tmp_path / "bare.h5"
    with h5py.File(path, "w") as f:
        f["kspace"] = np.ones((2, 16, 12), np.complex64)
    with FastMRIFile(path) as f:
        assert f.recon_size == (320, 320) and f.encoded_size == (16, 12) and f.padding == (0, 12)
    with h5py.File(path, "a") as f:
        f["reconstruction_rss"] = np.ones((2, 8, 6), np.float32)
    with FastMRIFile(path) as f:
        assert f.recon_size == (8, 6)


def test_reads_one_slice_at_a_time(multicoil, monkeypatch):
    path, _ = multicoil
    reads = []
    original = h5py.Dataset.__getitem__

    def spy(self, args, *rest, **kw):
        reads.append((self.name, args))
        return original(self, args, *rest, **kw)

    monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)
    f = FastMRIFile(path)
    f.kspace(1)
    f.target(2)
    f.close()
    assert [r for r in reads if r[0] in ("/kspace", "/reconstruction_rss")] == [
        ("/kspace", 1), ("/reconstruction_rss", 2)]


def test_pickles_for_worker_processes(multicoil):
    path, _ = multicoil
    with FastMRIFile(path) as f:
        clone = pickle.loads(pickle.dumps(f))
        np.testing.assert_array_equal(clone.kspace(2), f.kspace(2))
        clone.close()


# -- bad input --------------------------------------------------------------------------------------

def _kspace_file(path, kspace, **extra):
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        for key, value in extra.items():
            f[key] = value
    return path


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("not hdf5 at all")
    with pytest.raises(InputError, match="not an HDF5 file"):
        FastMRIFile(path)
    with pytest.raises(InputError, match="no such file"):
        FastMRIFile(tmp_path / "missing.h5")
    assert not is_fastmri_file(path)


def test_truncated_hdf5(multicoil, tmp_path):
    path, _ = multicoil
    data = path.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated"):
        FastMRIFile(cut)
    assert not is_fastmri_file(cut)


def test_no_kspace(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros((2, 4, 4), np.float32)
    with pytest.raises(InputError, match="no 'kspace'") as info:
        FastMRIFile(path)
    assert info.value.path == str(path)
    assert not is_fastmri_file(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, complex(0, -np.inf)])
def test_non_finite_kspace_checked_per_slice(tmp_path, bad):
    k = np.ones((3, 2, 8, 8), np.complex64)
    k[1, 1, 4, 4] = bad
    path = _kspace_file(tmp_path / "nan.h5", k)
    with FastMRIFile(path) as f:  # opening does not read the data
        f.kspace(0)
        f.kspace(2)
        with pytest.raises(InputError, match="slice 1 holds NaN or Inf"):
            f.kspace(1)


@pytest.mark.parametrize("shape", [(8, 8), (2, 2, 2, 8, 8)])
def test_wrong_rank(tmp_path, shape):
    path = _kspace_file(tmp_path / "rank.h5", np.ones(shape, np.complex64))
    with pytest.raises(InputError, match="rank"):
        FastMRIFile(path)


def test_real_kspace_and_bad_mask(tmp_path):
    with pytest.raises(InputError, match="expected complex"):
        FastMRIFile(_kspace_file(tmp_path / "real.h5", np.ones((2, 8, 8), np.float32)))
    path = _kspace_file(tmp_path / "mask.h5", np.ones((2, 8, 8), np.complex64), mask=np.ones(5, bool))
    with FastMRIFile(path) as f, pytest.raises(InputError, match="'mask' has shape"):
        f.mask
    bad_header = _kspace_file(tmp_path / "hdr.h5", np.ones((2, 8, 8), np.complex64),
                              ismrmrd_header=np.bytes_(b"<ismrmrdHeader><encoding>"))
    with pytest.raises(InputError, match="ismrmrd_header"):
        FastMRIFile(bad_header)


def test_is_fastmri_file(multicoil, tmp_path):
    assert is_fastmri_file(multicoil[0])
    assert not is_fastmri_file(tmp_path)
    assert not is_fastmri_file(tmp_path / "missing.h5")


# -- reconstructions (fastMRI's submission format) --------------------------------------------------

def test_reconstruction_round_trip(tmp_path):
    recon = np.random.default_rng(0).random((3, 16, 12)).astype(np.float32)
    path = tmp_path / "out" / "file_mc.h5"
    write_reconstruction(path, recon, attrs={"model": "rsd", "acceleration": 4, "skip": None})
    with h5py.File(path, "r") as f:
        assert list(f.keys()) == ["reconstruction"]
        assert f["reconstruction"].dtype == np.float32
        np.testing.assert_array_equal(f["reconstruction"][()], recon)
        assert f.attrs["model"] == "rsd" and f.attrs["acceleration"] == 4 and "skip" not in f.attrs
    np.testing.assert_array_equal(read_reconstruction(path), recon)
    assert sorted(p.name for p in path.parent.iterdir()) == ["file_mc.h5"]  # no temporary left
    with pytest.raises(InputError, match=r"exists \(use --force\)"):
        write_reconstruction(path, recon)
    write_reconstruction(path, 2 * recon, overwrite=True)
    np.testing.assert_array_equal(read_reconstruction(path), 2 * recon)
    with pytest.raises(InputError, match="no 'target' dataset"):
        read_reconstruction(path, key="target")


def test_reads_fastmri_package_submission(tmp_path, monkeypatch):
    fm = _fastmri(monkeypatch, "fastmri")
    recon = np.random.default_rng(1).random((2, 8, 8)).astype(np.float32)
    fm.save_reconstructions({"file1.h5": recon}, tmp_path)
    np.testing.assert_array_equal(read_reconstruction(tmp_path / "file1.h5"), recon)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "r.h5"

    def broken(self, *args, **kw):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_dataset", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_reconstruction(path, np.zeros((1, 4, 4), np.float32))
    assert list(tmp_path.iterdir()) == []


# -- atomic paths and folders -----------------------------------------------------------------------

def test_atomic_path(tmp_path):
    target = tmp_path / "vol.nii.gz"
    with atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".nii.gz") and ".tmp-" in tmp.name
        tmp.write_bytes(b"new")
        assert not target.exists()
    assert target.read_bytes() == b"new"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise ValueError("interrupted")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.nii.gz"]


def test_replace_dir(tmp_path):
    run, built = tmp_path / "run", tmp_path / "built"
    built.mkdir()
    (built / "a.txt").write_text("1")
    replace_dir(built, run, overwrite=False)
    assert (run / "a.txt").read_text() == "1" and not built.exists()
    built.mkdir()
    (built / "b.txt").write_text("2")
    with pytest.raises(FileExistsError):
        replace_dir(built, run, overwrite=False)
    assert sorted(p.name for p in run.iterdir()) == ["a.txt"]
    replace_dir(built, run, overwrite=True)
    assert sorted(p.name for p in run.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
