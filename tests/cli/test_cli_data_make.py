"""`rsd-sci data make` in-process (Typer's CliRunner): what it writes, checked with h5py and numpy."""

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()


def make(tmp_path, *args, name="set"):
    out = tmp_path / name
    result = runner.invoke(app, ["data", "make", "--out", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def low_res_percentile(kspace, n_center, q=99.0):
    """The published scale rule, computed independently with numpy: centre lines only -> iFFT -> RSS."""
    w = kspace.shape[-1]
    keep = np.zeros(w, bool)
    keep[w // 2 - n_center // 2: w // 2 - n_center // 2 + n_center] = True
    k = kspace * keep
    img = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    return np.percentile(np.sqrt((np.abs(img) ** 2).sum(0)), q)


def test_mri_phantoms_single_coil(tmp_path):
    out = make(tmp_path, "--n-train", "5", "--n-test", "3", "--size", "32", "--accel", "4",
               "--center-fraction", "0.2")
    card = yaml.safe_load((out / "card.yaml").read_text())
    assert card["n_train"] == 5 and card["n_test"] == 3
    assert not set(card["train_volumes"]) & set(card["test_volumes"])
    with h5py.File(out / "train.h5") as f:
        y, masks, centers = f["measurements"][:], f["masks"][:].astype(bool), f["centers"][:].astype(bool)
        assert y.shape == (5, 1, 32, 32) and y.dtype == np.complex64
        assert "targets" not in f  # clean data never enter the training split
        for i in range(5):
            assert np.all(y[i][..., ~masks[i]] == 0)  # unsampled lines are zero
            assert 4 <= masks[i].sum() <= 13  # fastMRI's random mask: R = 4 on average (8 of 32 lines)
            assert np.all(masks[i][centers[i]]) and centers[i].sum() == 6  # round(0.2 * 32)
            assert low_res_percentile(y[i], int(centers[i].sum())) == pytest.approx(1.0, rel=1e-3)
        assert len({m.tobytes() for m in masks}) > 1  # each phantom is its own volume: its own mask
    with h5py.File(out / "test.h5") as f:
        assert f["targets"].shape == (3, 1, 32, 32)
        t = f["targets"][0, 0]
        assert 0.2 < np.percentile(t, 99) < 3.0  # normalised units, roughly [0, 1]


def test_mri_phantoms_multicoil_has_espirit_maps(tmp_path):
    out = make(tmp_path, "--n-train", "2", "--n-test", "1", "--size", "48", "--coils", "4",
               "--center-fraction", "0.2", "--sigma-n", "0.01")
    with h5py.File(out / "train.h5") as f:
        maps, y = f["coil_maps"][:], f["measurements"][:]
        assert maps.shape == (2, 4, 48, 48) and y.shape == (2, 4, 48, 48)
        rss = np.sqrt((np.abs(maps) ** 2).sum(1))
        assert np.median(rss[rss > 0]) == pytest.approx(1.0, abs=0.05)  # ESPIRiT maps: unit RSS
        np.testing.assert_allclose(f["sigma_n"][:], 0.01, rtol=1e-6)


def test_mri_maps_torch_and_sigpy_agree_inside_the_object(tmp_path):
    """`--maps torch` (the default) and `--maps sigpy` store the same maps where the phantom is, and the
    same measurements everywhere; a method not offered is a one-line error."""
    flags = ["--n-train", "1", "--n-test", "1", "--size", "48", "--coils", "4", "--center-fraction", "0.2"]
    ours, ref = make(tmp_path, *flags, name="torch"), make(tmp_path, *flags, "--maps", "sigpy", name="sigpy")
    with h5py.File(ours / "test.h5") as a, h5py.File(ref / "test.h5") as b:
        np.testing.assert_array_equal(a["measurements"][:], b["measurements"][:])
        inside = a["targets"][:, 0] > 0.05 * a["targets"][:].max()
        d = np.abs(a["coil_maps"][:] - b["coil_maps"][:]).transpose(1, 0, 2, 3)[:, inside]
        assert np.linalg.norm(d) / np.sqrt(inside.sum()) < 1e-3
    result = runner.invoke(app, ["data", "make", "--out", str(tmp_path / "x"), "--maps", "bart"])
    assert result.exit_code == 2 and "--maps must be torch or sigpy" in result.output


def test_ct_sparse_views(tmp_path):
    out = make(tmp_path, "--modality", "ct", "--views", "60", "--n-train", "3", "--n-test", "2", "--size", "32")
    with h5py.File(out / "train.h5") as f:
        y, m = f["measurements"][:], f["masks"][:].astype(bool)
        assert y.shape == (3, 1, 180, 32) and m.shape == (3, 180)
        assert np.all(m.sum(1) == 60)
        assert np.all(y[:, 0][~m] == 0) and np.abs(y[:, 0][m]).max() > 0
    with h5py.File(out / "test.h5") as f:
        x = f["targets"][:]
        assert x.min() >= -1.0001 and x.max() < 2  # air -> -1, water -> 0


@pytest.mark.parametrize("corruption,shape", [("noise", (1, 32, 32)), ("blur", (1, 32, 32)),
                                              ("inpaint", (1, 32, 32)), ("downsample", (1, 16, 16))])
def test_image_corruptions(tmp_path, corruption, shape):
    out = make(tmp_path, "--modality", "image", "--corruption", corruption, "--sigma-n", "0.1",
               "--n-train", "3", "--n-test", "2", "--size", "32", "--p", "0.6")
    with h5py.File(out / "test.h5") as f:
        y, x = f["measurements"][:], f["targets"][:]
        assert y.shape[1:] == shape and x.shape[1:] == (1, 32, 32)
        if corruption == "noise":  # y = x + 0.1 n
            assert np.std(y - x) == pytest.approx(0.1, rel=0.1)
        if corruption == "inpaint":
            m = f["masks"][:].astype(bool)
            assert np.all(y[~m] == 0) and 0.3 < m.mean() < 0.5  # 60 % missing


def test_workers_give_the_same_set(tmp_path):
    args = ["--n-train", "3", "--n-test", "1", "--size", "48", "--coils", "4", "--center-fraction", "0.2",
            "--sigma-n", "0.02"]
    one = make(tmp_path, *args, name="one")
    two = make(tmp_path, *args, "--workers", "2", name="two")
    with h5py.File(one / "train.h5") as a, h5py.File(two / "train.h5") as b:
        for key in ("measurements", "masks", "coil_maps", "scale", "sigma_n"):
            np.testing.assert_array_equal(a[key][:], b[key][:])


def test_config_file_and_flags(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("n_train: 2\nn_test: 1\nsize: 32\nmodality: ct\nviews: 30\n")
    out = make(tmp_path, "--config", str(cfg), "--views", "45")
    with h5py.File(out / "train.h5") as f:
        assert f["measurements"].shape[0] == 2 and f["masks"][0].sum() == 45  # the flag beats the file


def test_existing_output_needs_force(tmp_path):
    out = make(tmp_path, "--n-train", "1", "--n-test", "1", "--size", "32", "--center-fraction", "0.2")
    r = runner.invoke(app, ["data", "make", "--out", str(out), "--n-train", "1", "--n-test", "1"])
    assert r.exit_code == 2 and "exists" in r.output and "Traceback" not in r.output
    make(tmp_path, "--n-train", "2", "--n-test", "1", "--size", "32", "--force", "--center-fraction", "0.2")
    with h5py.File(out / "train.h5") as f:
        assert f["measurements"].shape[0] == 2


@pytest.mark.parametrize("args,message", [
    (["--accel", "0.5"], "--accel must be at least 1"),
    (["--center-fraction", "1.5"], "--center-fraction must be in (0, 1)"),
    (["--modality", "pet"], "unknown modality"),
    (["--source", "fastmri"], "needs --input"),
    (["--modality", "ct", "--views", "500"], "--views must be in"),
    (["--sigma-n", "loud"], "--sigma-n takes a number"),
    (["--seed", "-3"], "--seed must be >= 0"),
    (["--mask", "spiral"], "spiral"),
])
def test_bad_flags_one_line_exit_2(tmp_path, args, message):
    r = runner.invoke(app, ["data", "make", "--out", str(tmp_path / "x"), *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x").exists()


def test_progress_names_the_split_and_the_volume(tmp_path):
    """The progress callback hears every slice with its split and its volume's number among all."""
    from rsd_sci.data.make import MakeSpec, make_measurement_set

    calls = []
    make_measurement_set(MakeSpec(modality="mri", size=32, n_train=3, n_test=2, center_fraction=0.2),
                         tmp_path / "s", progress=lambda *a: calls.append(a))
    assert calls == [(1, 5, "train, volume 1 of 5"), (2, 5, "train, volume 2 of 5"), (3, 5, "train, volume 3 of 5"),
                     (4, 5, "test, volume 4 of 5"), (5, 5, "test, volume 5 of 5")]
