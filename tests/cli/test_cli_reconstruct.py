"""`rsd-sci reconstruct` in-process: measurement sets and fastMRI files, baselines and learned methods."""

import json

import h5py
import numpy as np
import pytest

from tests.support.cli_runner import cli, ok
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def mri_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("mri") / "set"
    ok("data", "make", "--size", 32, "--n-train", 8, "--n-test", 4, "--center-fraction", 0.2, "--out", out)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    ok("train", "--modality", "mri", "--size", 32, "--n-train", 8, "--n-test", 4, "--batch", 4, "--steps", 2,
       "--distill-steps", 1, "--center-fraction", 0.2, "--no-eval", "--out", out)
    return out


@pytest.fixture(scope="module")
def fastmri_dirs(tmp_path_factory):
    """Single-coil and 4-coil folders: 2 volumes of 2 slices, 64 x 32 k-space (x2 read-out
    oversampling), reconstruction size 32 x 24 (so the output is cropped in both directions)."""
    root = tmp_path_factory.mktemp("fastmri")
    for coils in (1, 4):
        d = root / f"c{coils}"
        d.mkdir()
        for v in range(2):
            write_fastmri_file(d / f"file_{coils}_{v}.h5", make_fastmri_kspace(2, coils, 64, 32, seed=v),
                               recon_size=(32, 24))
    return root


def test_measurement_set_baselines(mri_set, tmp_path):
    with h5py.File(mri_set / "test.h5") as f:
        targets = f["targets"][:, 0]
    errors = {}
    for method in ("zero-filled", "cg-sense"):
        out = tmp_path / f"{method}.h5"
        ok("reconstruct", "--input", mri_set, "--out", out, "--method", method, "--device", "cpu")
        with h5py.File(out) as f:
            assert f["reconstruction"].shape == (4, 32, 32) and "std" not in f
            np.testing.assert_array_equal(f["targets"][:], targets)
            assert f.attrs["method"] == method and f.attrs["split"] == "test"
            recon = f["reconstruction"][:]
        assert np.isfinite(recon).all() and recon.min() >= 0  # magnitudes
        errors[method] = np.sum((recon - targets) ** 2) / np.sum(targets**2)
    assert errors["zero-filled"] < 0.5 and errors["cg-sense"] < 0.5  # normalised units, as the targets


@pytest.mark.parametrize("coils,method", [(1, "zero-filled"), (4, "cg-sense")])
def test_fastmri_folder_cropped_and_evaluated(fastmri_dirs, tmp_path, coils, method):
    from rsd_sci.data.fastmri import read_reconstruction

    src, out = fastmri_dirs / f"c{coils}", tmp_path / "recon"
    ok("reconstruct", "--input", src, "--out", out, "--method", method, "--center-fraction", 0.16, "--accel", 2)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in src.glob("*.h5"))
    assert read_reconstruction(out / names[0]).shape == (2, 32, 24)  # the header's recon size
    ok("evaluate", "--targets", src, "--predictions", out, "--json", tmp_path / "m.json")
    metrics = json.loads((tmp_path / "m.json").read_text())["mean"]
    assert all(np.isfinite(v) for v in metrics.values())
    assert metrics["nmse"] < 0.3  # in the file's units: the gain matches reconstruction_rss


def test_fastmri_file_to_file_with_own_mask(tmp_path):
    from rsd_sci.data.fastmri import read_reconstruction

    k = make_fastmri_kspace(2, 1, 64, 32, seed=3)
    mask = np.zeros(32, bool)
    mask[::3] = True
    mask[13:19] = True
    src = write_fastmri_file(tmp_path / "test_file.h5", k * mask, recon_size=(32, 32), target=None, mask=mask)
    out = tmp_path / "out.h5"
    ok("reconstruct", "--input", src, "--out", out, "--method", "l1-wavelet", "--steps", 5)
    recon = read_reconstruction(out)
    assert recon.shape == (2, 32, 32) and np.isfinite(recon).all()


def test_learned_methods_on_a_set(mri_set, trained, tmp_path):
    out = tmp_path / "adps.h5"
    ok("reconstruct", "--input", mri_set, "--out", out, "--method", "adps", "--model", trained, "--steps", 3,
       "--n-samples", 2, "--batch", 4)
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == f["std"].shape == (4, 32, 32)
        assert np.isfinite(f["std"][:]).all() and f["std"][:].max() > 0
        assert f.attrs["model"].endswith("teacher.safetensors")
    out = tmp_path / "gen.h5"
    ok("reconstruct", "--input", mri_set, "--out", out, "--method", "generator", "--model",
       trained / "generator.safetensors", "--steps", 2)
    with h5py.File(out) as f:
        assert f["reconstruction"].shape == (4, 32, 32) and "std" not in f


def test_learned_method_on_fastmri(fastmri_dirs, trained, tmp_path):
    from rsd_sci.data.fastmri import read_reconstruction

    src, out = fastmri_dirs / "c1" / "file_1_0.h5", tmp_path / "r.h5"
    ok("reconstruct", "--input", src, "--out", out, "--method", "generator", "--model", trained, "--steps", 2,
       "--n-samples", 2)
    assert read_reconstruction(out).shape == read_reconstruction(out, "std").shape == (2, 32, 24)


def test_ct_baselines(ct_set, tmp_path):
    for method in ("fbp", "tv"):
        out = tmp_path / f"{method}.h5"
        ok("reconstruct", "--input", ct_set, "--out", out, "--method", method, "--steps", 5)
        with h5py.File(out) as f:
            assert f["reconstruction"].shape == f["targets"].shape == (1, 16, 16)
            assert f["reconstruction"][:].min() < 0  # real CT images are written as they are, not |x|



# ---- NIfTI volumes: sliced on axis 2 as `data make --source nifti` does, written back in their geometry -------

def write_nifti_volume(path, shape=(24, 20, 3), ct=False, seed=0):
    """An oblique-affine volume: MR magnitudes (~100-150, an empty last slice) or CT in HU (air, +40, +700)."""
    import nibabel as nib

    rng = np.random.default_rng(seed)
    affine = np.diag([0.9, 1.1, 3.0, 1.0])
    affine[:3, 3] = [-10.0, 5.0, 20.0]
    h, w = shape[:2]
    if ct:
        vol = np.full(shape, -1000.0, np.float32)
        vol[h // 4:3 * h // 4, w // 4:3 * w // 4] = 40.0
        vol[h // 2 - 2:h // 2 + 2, w // 2 - 2:w // 2 + 2] = 700.0
    else:
        vol = np.zeros(shape, np.float32)
        tissue = (slice(h // 4, 3 * h // 4), slice(w // 5, 4 * w // 5), slice(0, -1))
        vol[tissue] = 100 + 50 * rng.random(vol[tissue].shape)
    img = nib.Nifti1Image(vol, affine)
    img.set_qform(affine, code=1)
    nib.save(img, path)
    return path


def test_nifti_mri_baselines_keep_geometry_and_units(tmp_path):
    import nibabel as nib

    src = write_nifti_volume(tmp_path / "mr.nii.gz")
    ref = nib.load(src)
    x = ref.get_fdata()
    out = tmp_path / "full.nii.gz"  # fully sampled zero-filled: the volume itself (|x|), padding cropped
    ok("reconstruct", "--input", src, "--out", out, "--method", "zero-filled", "--accel", 1)
    back = nib.load(out)
    assert back.shape == ref.shape and back.get_data_dtype() == np.float32
    assert np.array_equal(back.affine, ref.affine) and np.array_equal(back.header.get_qform(), ref.header.get_qform())
    np.testing.assert_allclose(back.get_fdata(), x, atol=1e-3 * x.max())  # the volume's own units
    out = tmp_path / "cg.nii"
    ok("reconstruct", "--input", src, "--out", out, "--method", "cg-sense", "--accel", 2, "--center-fraction", 0.16)
    y = nib.load(out).get_fdata()
    assert np.sum((y - x) ** 2) / np.sum(x**2) < 0.3 and not y[..., -1].any()  # the empty slice stays empty


def test_nifti_ct_baseline_in_hounsfield_units(tmp_path):
    import nibabel as nib

    src = write_nifti_volume(tmp_path / "ct.nii.gz", (32, 32, 2), ct=True)
    out = tmp_path / "fbp.nii.gz"
    ok("reconstruct", "--input", src, "--out", out, "--method", "fbp", "--views", 90)
    x, y = nib.load(src).get_fdata(), nib.load(out).get_fdata()
    assert y.shape == x.shape
    inside = (slice(6, 26), slice(6, 26))  # the geometry sees the inscribed circle only (outside: 0)
    assert np.sqrt(np.mean((y - x)[inside] ** 2)) < 150  # HU, of a 1700 HU range
    assert y[16, 4, 0] < -800 and y[15, 15, 0] > 300  # air and bone


def test_nifti_folder_with_a_model_and_std_files(trained, tmp_path):
    import nibabel as nib

    src = tmp_path / "vols"
    src.mkdir()
    for v in range(2):
        write_nifti_volume(src / f"sub{v}.nii.gz", (32, 28, 2), seed=v)
    out = tmp_path / "recon"
    ok("reconstruct", "--input", src, "--out", out, "--method", "generator", "--model", trained, "--steps", 2,
       "--n-samples", 2)
    assert sorted(p.name for p in out.iterdir()) == ["sub0.nii.gz", "sub0_std.nii.gz", "sub1.nii.gz",
                                                     "sub1_std.nii.gz"]
    for name in ("sub0.nii.gz", "sub0_std.nii.gz"):
        img = nib.load(out / name)
        assert img.shape == (32, 28, 2) and np.isfinite(img.get_fdata()).all() and img.get_fdata().max() > 0
    assert cli("reconstruct", "--input", src, "--out", out, "--method", "zero-filled").exit_code == 2  # exists
    ok("reconstruct", "--input", src, "--out", out, "--method", "zero-filled", "--force")



def test_torchrun_shares_the_files_and_matches_one_process(tmp_path):
    """2 gloo processes (files 0, 2 on rank 0, file 1 on rank 1) write what one process writes."""
    import os
    import subprocess
    import sys

    from rsd_sci.data.fastmri import read_reconstruction

    src = tmp_path / "src"
    src.mkdir()
    for v in range(3):
        write_fastmri_file(src / f"file_{v}.h5", make_fastmri_kspace(2, 1, 64, 32, seed=v), recon_size=(32, 24))
    args = ["reconstruct", "--input", str(src), "--method", "cg-sense", "--accel", "2", "--center-fraction", "0.16",
            "--steps", "5", "--device", "cpu"]
    ok(*args, "--out", tmp_path / "one")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cli",
           *args, "--out", str(tmp_path / "two")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("wrote 3 cg-sense reconstruction file(s)") == 1 and "(2 processes)" in r.stdout
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) == [f"file_{v}.h5" for v in range(3)]
    for name in names:
        np.testing.assert_allclose(read_reconstruction(tmp_path / "two" / name),
                                   read_reconstruction(tmp_path / "one" / name), rtol=1e-5, atol=1e-7)


# ---- bad input: one line, exit code 2, nothing written ---------------------------------------------

@pytest.fixture(scope="module")
def ct_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("ct") / "set"
    ok("data", "make", "--modality", "ct", "--size", 16, "--n-train", 2, "--n-test", 1, "--out", out)
    return out


@pytest.mark.parametrize("case", ["not safetensors", "other modality", "needs model", "neither", "empty folder",
                                  "exists", "wrong baseline", "samples of a baseline", "model of another size",
                                  "nifti of another size", "nifti modality conflict", "nifti ct not in hu",
                                  "nifti to h5"])
def test_bad_input(case, mri_set, ct_set, trained, tmp_path):
    out, inp, extra = tmp_path / "out.h5", mri_set, []
    method = "zero-filled"
    if case == "not safetensors":
        (tmp_path / "m.safetensors").write_text("not a model")
        method, extra = "adps", ["--model", tmp_path / "m.safetensors"]
    elif case == "other modality":
        inp, method, extra = ct_set, "adps", ["--model", trained]
    elif case == "needs model":
        method = "generator"
    elif case == "neither":
        inp = tmp_path / "x.h5"
        inp.write_text("hello")
    elif case == "empty folder":
        inp = tmp_path / "empty"
        inp.mkdir()
    elif case == "exists":
        out.write_text("keep")
    elif case == "wrong baseline":
        method = "fbp"
    elif case == "samples of a baseline":
        extra = ["--n-samples", 2]
    elif case == "model of another size":  # a 64 x 64 fastMRI file, a 32 x 32 model
        inp = write_fastmri_file(tmp_path / "big.h5", make_fastmri_kspace(1, 1, 128, 64, seed=0), recon_size=(64, 64))
        method, extra = "generator", ["--model", trained]
    elif case.startswith("nifti"):  # the model is 32 x 32 mri
        inp = write_nifti_volume(tmp_path / "v.nii.gz", (48, 40, 2) if case == "nifti of another size" else (32, 32, 2))
        out = out if case == "nifti to h5" else tmp_path / "out.nii.gz"
        if case == "nifti of another size":
            method, extra = "generator", ["--model", trained]
        elif case == "nifti modality conflict":
            method, extra = "adps", ["--model", trained, "--modality", "ct"]
        elif case == "nifti ct not in hu":
            method = "fbp"
    r = cli("reconstruct", "--input", inp, "--out", out, "--method", method, *extra)
    assert r.exit_code == 2, r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rsd-sci: error:") and "Traceback" not in r.output
    if case == "exists":
        assert out.read_text() == "keep"
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]
    if case == "other modality":
        assert "a mri model cannot reconstruct ct data" in lines[0]
