"""`rsd-sci data make` on file sources (fastMRI, NIfTI, LoDoPaB) written by the tests, in-process."""

import functools

import h5py
import nibabel as nib
import numpy as np
import pytest
import yaml

from tests.support import cli_runner
from tests.support.fastmri_schema import ifft2c, make_fastmri_kspace, write_fastmri_file

run = functools.partial(cli_runner.cli, "data", "make")   # `rsd-sci data make ARGS`
ok = functools.partial(cli_runner.ok, "data", "make")


@pytest.fixture(scope="module")
def multicoil_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("multicoil")
    for v in range(3):  # 3 volumes of 2 slices, 4 coils, x2 read-out oversampling (64 -> 32 rows)
        write_fastmri_file(d / f"file_brain_{v:03d}.h5", make_fastmri_kspace(2, 4, 64, 32, seed=v),
                           recon_size=(32, 32))
    return d


def test_fastmri_multicoil_flow(multicoil_dir, tmp_path):
    out = tmp_path / "set"
    ok("--source", "fastmri", "--input", multicoil_dir, "--out", out, "--center-fraction", "0.16",
       "--accel", "4")
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert not set(card["train_volumes"]) & set(card["test_volumes"])  # split by volume
    assert card["n_train"] + card["n_test"] == 6 and card["n_test"] == 2  # one whole volume
    with h5py.File(out / "train.h5") as f:
        y, m, maps = f["measurements"][:], f["masks"][:].astype(bool), f["coil_maps"][:]
        src, scale, sigma = [s.decode() for s in f["source"][:]], f["scale"][:], f["sigma_n"][:]
        assert y.shape == (4, 4, 32, 32)  # read-out cropped to the reconstruction size
        assert maps.shape == (4, 4, 32, 32)
        np.testing.assert_allclose(sigma, scale / np.sqrt(2), rtol=1e-6)  # whitened: unit complex variance
        for i in range(4):
            same = [j for j in range(4) if src[j] == src[i]]
            assert all(np.array_equal(m[i], m[j]) for j in same)  # one mask per volume (seeded by name)
        assert not np.array_equal(m[0], m[2])  # ... and another for another volume
    with h5py.File(out / "test.h5") as f:
        targets, name = f["targets"][:], f["source"][0].decode()
    with h5py.File(multicoil_dir / name) as f:
        ref = f["reconstruction_rss"][:]
    for t, r in zip(targets[:, 0], ref):  # whitening changes the gain, not the image
        assert np.corrcoef(t.ravel(), r.ravel())[0, 1] > 0.99


def test_fastmri_single_coil_with_own_mask_is_used_as_measured(tmp_path):
    k = make_fastmri_kspace(2, 1, 128, 64, seed=5)
    mask = np.zeros(64, bool)
    mask[::3] = True
    mask[30:35] = True
    src = tmp_path / "src"
    src.mkdir()
    for v in range(2):
        write_fastmri_file(src / f"test_{v}.h5", k * mask, recon_size=(64, 64), target=None, mask=mask)
    out = tmp_path / "set"
    ok("--source", "fastmri", "--input", src, "--out", out)
    with h5py.File(out / "train.h5") as f:
        np.testing.assert_array_equal(f["masks"][0].astype(bool), mask)
        np.testing.assert_array_equal(f["centers"][0].astype(bool), np.isin(np.arange(64), range(30, 35)))
        y, a = f["measurements"][0, 0], f["scale"][0]
    # the file's k-space, read-out cropped (independent numpy crop of the image), times the scale
    img = ifft2c(k[0] * mask)[32:96]
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(img), norm="ortho")) * a
    np.testing.assert_allclose(y, expected, atol=1e-5 * np.abs(expected).max())


def test_test_input_and_sigma_auto(tmp_path):
    k = make_fastmri_kspace(3, 1, 128, 64, seed=1)
    peak = np.abs(ifft2c(k)).max(axis=(-2, -1))
    # noise well above what the phantoms' sharp edges leave in the k-space corners (the estimator's regime:
    # at 5e-2 of the peak one slice read 30 % high)
    noise_std = np.sqrt(1e-1**2 + 1e-3**2) * peak / np.sqrt(2)  # ours + the fixture's, per real part
    rng = np.random.default_rng(3)
    k = k + (1e-1 * peak / np.sqrt(2))[:, None, None] * (rng.standard_normal(k.shape) + 1j * rng.standard_normal(k.shape))
    train, val = tmp_path / "train", tmp_path / "val"
    train.mkdir(), val.mkdir()
    write_fastmri_file(train / "a.h5", k, recon_size=(64, 64), target="esc")
    write_fastmri_file(val / "b.h5", k[:1], recon_size=(64, 64), target="esc")
    out = tmp_path / "set"
    ok("--source", "fastmri", "--input", train, "--test-input", val, "--out", out, "--sigma-n", "auto",
       "--center-fraction", "0.16")
    with h5py.File(out / "train.h5") as f:
        sigma, scale = f["sigma_n"][:], f["scale"][:]
        assert f["measurements"].shape[0] == 3
    with h5py.File(out / "test.h5") as f:
        assert [s.decode() for s in f["source"][:]] == ["b.h5"]
    np.testing.assert_allclose(sigma, noise_std * scale, rtol=0.25)


def test_nifti_mri_gets_a_smooth_phase_and_ct_uses_hounsfield(tmp_path):
    rng = np.random.default_rng(0)
    mr, ct = tmp_path / "mr", tmp_path / "ct"
    mr.mkdir(), ct.mkdir()
    for v in range(2):
        vol = np.zeros((32, 32, 3), np.float32)
        vol[8:24, 6:26] = 100 + 20 * rng.random((16, 20, 3))
        nib.save(nib.Nifti1Image(vol, np.eye(4)), mr / f"sub{v}.nii.gz")
        hu = np.full((32, 32, 2), -1000.0, np.float32)
        hu[8:24, 8:24] = 40.0
        nib.save(nib.Nifti1Image(hu, np.eye(4)), ct / f"ct{v}.nii")
    out = tmp_path / "mr_set"
    ok("--source", "nifti", "--input", mr, "--out", out, "--center-fraction", "0.16")
    with h5py.File(out / "train.h5") as f:
        y = f["measurements"][0, 0]
    k_flip = np.conj(np.roll(np.flip(y, (-2, -1)), (1, 1), (-2, -1)))  # K(-k) on the centred grid
    support = (y != 0) & (k_flip != 0)
    assert np.abs(y - k_flip)[support].sum() > 0.1 * np.abs(y)[support].sum()  # not Hermitian
    out = tmp_path / "ct_set"
    ok("--modality", "ct", "--source", "nifti", "--input", ct, "--out", out, "--views", "30")
    with h5py.File(out / "test.h5") as f:
        x = f["targets"][0, 0]
    assert x[16, 16] == pytest.approx(0.04, abs=1e-3)  # +40 HU: just above water (0)
    assert x[0, 0] == pytest.approx(-1.0)  # air


def test_lodopab_ground_truth(tmp_path):
    src = tmp_path / "lodopab"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        with h5py.File(src / f"ground_truth_train_{i:03d}.hdf5", "w") as f:
            f["data"] = (0.2 * rng.random((3, 40, 40))).astype(np.float32)
    out = tmp_path / "set"
    ok("--modality", "ct", "--source", "lodopab", "--input", src, "--out", out, "--size", "32")
    with h5py.File(out / "train.h5") as f:
        assert f["measurements"].shape == (3, 1, 180, 32)


def test_dicom_ct_series(tmp_path):
    from tests.data.test_dicom import _ct_series

    for v in range(2):
        (tmp_path / "src" / f"series{v}").mkdir(parents=True)
        _ct_series(tmp_path / "src" / f"series{v}", n=3, seed=v)
    out = tmp_path / "set"
    ok("--modality", "ct", "--source", "dicom", "--input", tmp_path / "src", "--out", out, "--size", "16",
       "--views", "30")
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert card["n_train"] == 3 and card["n_test"] == 3  # one series each: split by series
    with h5py.File(out / "train.h5") as f:
        assert f["measurements"].shape == (3, 1, 180, 16)


# ---- bad input: one line naming the file, exit code 2, no traceback, nothing written -------------

def _bad_fastmri(tmp_path, kind):
    d = tmp_path / "src"
    d.mkdir()
    good = make_fastmri_kspace(1, 1, 16, 16, seed=0)
    write_fastmri_file(d / "g.h5", good, recon_size=(8, 16))  # a good volume beside it, so it splits
    path = d / "f.h5"
    if kind == "not hdf5":
        path.write_text("hello")
    elif kind == "truncated":
        write_fastmri_file(path, good, recon_size=(8, 16))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "no kspace":
        with h5py.File(path, "w") as f:
            f["reconstruction_rss"] = np.zeros((1, 8, 8), np.float32)
    elif kind == "nan":
        bad = good.copy()
        bad[0, 3, 3] = np.nan
        write_fastmri_file(path, bad, recon_size=(8, 16), target=None)
    elif kind == "nan multicoil":   # NaN in the read-out oversampling: whitening meets it first
        bad = make_fastmri_kspace(1, 4, 64, 64, seed=0)   # 64 columns: enough calibration lines for ESPIRiT
        bad[0, 1, 0, 5] = np.nan
        write_fastmri_file(path, bad, recon_size=(32, 64), target=None)
        write_fastmri_file(d / "g.h5", make_fastmri_kspace(1, 4, 64, 64, seed=1), recon_size=(32, 64))
    elif kind == "rank":
        with h5py.File(path, "w") as f:
            f["kspace"] = np.zeros((16, 16), np.complex64)
    elif kind == "mask width":
        write_fastmri_file(path, good, recon_size=(8, 16), target=None, mask=np.ones(12, bool))
    return d, path


@pytest.mark.parametrize("kind", ["not hdf5", "truncated", "no kspace", "nan", "nan multicoil", "rank",
                                  "mask width"])
def test_bad_fastmri_files(tmp_path, kind):
    d, path = _bad_fastmri(tmp_path, kind)
    r = run("--source", "fastmri", "--input", d, "--out", tmp_path / "out", "--sigma-n", "0")
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "f.h5" in lines[0] and "Traceback" not in r.output
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("out")] == []  # no temporary left


@pytest.mark.parametrize("kind", ["5d", "zeros"])
def test_bad_nifti(tmp_path, kind):
    d = tmp_path / "src"
    d.mkdir()
    data = np.ones((4, 4, 2, 2, 2), np.float32) if kind == "5d" else np.zeros((8, 8, 2), np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), d / "v.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((8, 8, 2), np.float32), np.eye(4)), d / "good.nii.gz")
    r = run("--source", "nifti", "--input", d, "--out", tmp_path / "out")
    assert r.exit_code == 2 and "v.nii.gz" in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "out").exists()


def test_folder_without_usable_files(tmp_path):
    (tmp_path / "src").mkdir()   # beside the output: an output inside its input is refused first
    (tmp_path / "src" / "notes.txt").write_text("nothing here")
    r = run("--source", "fastmri", "--input", tmp_path / "src", "--out", tmp_path / "out")
    assert r.exit_code == 2 and "no usable fastmri files" in r.output


# ---- one file alone: split by contiguous slice blocks with a guard gap ---------------------------

@pytest.mark.parametrize("source", ["nifti", "dicom", "lodopab"])
def test_one_file_alone_is_split_by_slices(tmp_path, source):
    """n = 10 slices, test fraction 0.2: test = slices 4, 5; train = 0, 1 and 8, 9 (2 dropped per cut)."""
    src = tmp_path / "src"
    src.mkdir()
    if source == "nifti":
        hu = np.full((32, 32, 10), -1000.0, np.float32)
        hu[8:24, 8:24] = 40.0
        nib.save(nib.Nifti1Image(hu, np.eye(4)), src / "one_ct.nii.gz")
    elif source == "dicom":
        from tests.data.test_dicom import _ct_series

        _ct_series(src, n=10, seed=0)
    else:
        with h5py.File(src / "ground_truth_train_000.hdf5", "w") as f:
            f["data"] = (0.2 * np.random.default_rng(0).random((10, 40, 40))).astype(np.float32)
    out = tmp_path / "set"
    ok("--modality", "ct", "--source", source, "--input", src, "--out", out, "--size", "16", "--views", "30")
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert card["split"] == "slices of one volume"
    assert card["n_train"] == 4 and card["n_test"] == 2
    with h5py.File(out / "train.h5") as tr, h5py.File(out / "test.h5") as te:
        assert sorted(tr["slice_index"][:].tolist()) == [0, 1, 8, 9]
        assert te["slice_index"][:].tolist() == [4, 5]


def test_one_volume_too_short_to_split(tmp_path):
    hu = np.full((16, 16, 3), 40.0, np.float32)
    nib.save(nib.Nifti1Image(hu, np.eye(4)), tmp_path / "short.nii")
    r = run("--modality", "ct", "--source", "nifti", "--input", tmp_path / "short.nii", "--out", tmp_path / "s")
    assert r.exit_code == 2 and "short.nii" in r.output and "needs at least" in r.output
