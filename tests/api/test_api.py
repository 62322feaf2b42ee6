"""The Python API (`rsd_sci.__all__`): cheap to import, and the same numbers as the CLI it wraps."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import rsd_sci
from tests.support.cli_runner import ok
from rsd_sci.physics.ct import ParallelBeamCT
from rsd_sci.physics.fourier import fft2c

pytestmark = pytest.mark.usefixtures("one_thread")
ROOT = Path(__file__).resolve().parents[2]


def test_import_is_cheap_and_lists_the_api():
    code = "import sys, rsd_sci; print(rsd_sci.__all__); assert 'torch' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "'reconstruct'" in out and "'load_model'" in out
    assert all(getattr(rsd_sci, name) is not None for name in rsd_sci.__all__)
    assert set(rsd_sci.__all__) <= set(dir(rsd_sci))
    with pytest.raises(AttributeError):
        rsd_sci.no_such_name


def test_mri_measurement_from_arrays():
    kspace = torch.randn(2, 1, 16, 16, dtype=torch.complex64)
    lines = torch.zeros(16, dtype=torch.bool)
    lines[[0, 3, 7, 8, 9, 12]] = True
    m = rsd_sci.mri_measurement(kspace * lines, lines, sigma_n=0.1)
    assert m.batch["centers"][0].nonzero().flatten().tolist() == [7, 8, 9]   # the run through column W // 2
    assert m.sigma_n.tolist() == pytest.approx([0.1, 0.1]) and m.index.tolist() == [0, 1]
    x, _ = rsd_sci.reconstruct(m, "zero-filled")
    torch.testing.assert_close(fft2c(x) * lines, kspace * lines)
    with pytest.raises(ValueError, match="coil_maps"):
        rsd_sci.mri_measurement(torch.zeros(1, 4, 16, 16, dtype=torch.complex64), lines)


def test_ct_and_image_measurements_from_arrays():
    mu = torch.rand(2, 1, 16, 16)
    views = torch.zeros(30, dtype=torch.bool)
    views[::3] = True
    m = rsd_sci.ct_measurement(ParallelBeamCT(16, 30, views).A(mu), views)
    assert m.spec == {"family": "ct", "image_size": 16, "n_angles": 30, "n_views": 10}
    assert rsd_sci.reconstruct(m, "fbp")[0].shape == (2, 1, 16, 16)
    kept = torch.rand(16, 16) > 0.5
    holes = rsd_sci.image_measurement(mu * kept, "inpaint", mask=kept)
    assert holes.batch["masks"].shape == (2, 1, 16, 16)
    torch.testing.assert_close(rsd_sci.reconstruct(holes, "corrupted")[0], mu * kept)
    down = rsd_sci.image_measurement(torch.nn.functional.avg_pool2d(mu, 2), "downsample", factor=2)
    assert down.spec["shape"] == [16, 16] and down.A(mu).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="mask"):
        rsd_sci.image_measurement(mu, "inpaint")
    with pytest.raises(ValueError, match="unknown corruption"):
        rsd_sci.image_measurement(mu, "smudge")


def test_samples_are_the_cli_s(api_folder, tmp_path):
    run = api_folder / "runs" / "mri-r4"
    generator = rsd_sci.load_model(run)
    images = rsd_sci.sample(generator, 3, seed=1)
    assert images.shape == (3, 1, 32, 32) and images.is_complex()
    torch.testing.assert_close(rsd_sci.sample(generator, 2, seed=1), images[:2])   # image i: seed and i alone
    ok("sample", "--model", run, "-n", 3, "--seed", 1, "--out", tmp_path / "s.npy", "--device", "cpu")
    np.testing.assert_allclose(np.load(tmp_path / "s.npy"), images[:, 0].abs().numpy(), rtol=1e-5, atol=1e-6)
    assert rsd_sci.sample(rsd_sci.load_model(run, kind="teacher"), 1, steps=2).shape == (1, 1, 32, 32)


@pytest.mark.parametrize("source,method,options", [
    ("runs/mri-r4/data", "generator", ["--model", "runs/mri-r4"]),        # a measurement set's test split
    ("scans/file_brain_001.h5", "cg-sense", ["--accel", 4]),             # fastMRI, no model: the flags' mask
    ("scans/t1.nii.gz", "generator", ["--model", "runs/mri-r4"]),         # NIfTI, simulated as the model's data
])
def test_reconstructions_are_the_cli_s(api_folder, tmp_path, monkeypatch, source, method, options):
    monkeypatch.chdir(api_folder)
    suffix = ".nii.gz" if source.endswith(".nii.gz") else ".h5"
    out = tmp_path / f"recon{suffix}"
    ok("reconstruct", "--input", source, "--out", out, "--method", method, "--steps", 2, "--device", "cpu", *options)
    model = "runs/mri-r4" if "--model" in options else None
    if source.endswith("data"):
        import h5py

        mean, _ = rsd_sci.reconstruct(rsd_sci.read_measurements(source), method, model, steps=2)
        with h5py.File(out) as f:
            np.testing.assert_allclose(f["reconstruction"][()], mean[:, 0].abs().numpy(), rtol=1e-5, atol=1e-6)
        return
    scan = rsd_sci.read_scan(source, None if model is None else rsd_sci.load_model(model), accel=4)
    mean, _ = rsd_sci.reconstruct(scan.measurement(), method, model, steps=2)
    written = rsd_sci.read_image_set(out)[:, 0] if suffix == ".h5" else None
    if suffix == ".nii.gz":
        import nibabel as nib

        written = np.asarray(nib.load(out).dataobj).transpose(2, 0, 1)
    np.testing.assert_allclose(written, scan.to_file_units(mean), rtol=1e-5, atol=1e-5)


def test_bad_input_is_an_input_error(api_folder):
    run = api_folder / "runs" / "mri-r4"
    with pytest.raises(rsd_sci.InputError, match="accel: 4 -> 8"):   # refused before any training
        rsd_sci.train(run, modality="mri", accel=8)
    with pytest.raises(TypeError, match="acel"):
        rsd_sci.train(run, acel=8)
    with pytest.raises(rsd_sci.InputError, match="read_measurements"):
        rsd_sci.read_scan(run / "data")
    with pytest.raises(rsd_sci.InputError, match="not a measurement set"):
        rsd_sci.read_measurements(api_folder / "scans")
