"""`rsd-sci info PATH [--json]` on each kind of file it knows, and a clear error on the rest."""

import json

import h5py
import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from cli.app import app
from fastmri_schema import make_fastmri_kspace, write_fastmri_file

runner = CliRunner()


def info_json(path):
    r = runner.invoke(app, ["info", str(path), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_fastmri_file(tmp_path):
    mask = np.zeros(32, bool)
    mask[::4] = True
    write_fastmri_file(tmp_path / "f.h5", make_fastmri_kspace(3, 4, 64, 32, seed=0), recon_size=(32, 32), mask=mask)
    facts = info_json(tmp_path / "f.h5")
    assert facts["kind"] == "fastMRI file" and facts["multicoil"] and facts["coils"] == 4
    assert facts["slices"] == 3 and facts["kspace_shape"] == [64, 32] and facts["recon_size"] == [32, 32]
    assert facts["acceleration"] == 4.0 and facts["target"] == "reconstruction_rss"


def test_measurement_set_and_split(tmp_path):
    out = tmp_path / "set"
    r = runner.invoke(app, ["data", "make", "--out", str(out), "--n-train", "3", "--n-test", "2", "--size", "32",
                            "--sigma-n", "0.05", "--center-fraction", "0.2"])
    assert r.exit_code == 0, r.output
    facts = info_json(out)
    assert facts["kind"] == "measurement set" and facts["modality"] == "mri"
    assert facts["train"]["samples"] == 3 and facts["test"]["samples"] == 2
    assert facts["train"]["sigma_n"]["mean"] == 0.05
    assert facts["test"]["arrays"]["targets"] == "(1, 32, 32) float32"
    assert "targets" not in facts["train"]["arrays"]
    assert facts["made_with"]["accel"] == 4.0 and "input" not in facts["made_with"]  # unset options left out
    r = runner.invoke(app, ["info", str(out / "train.h5")])  # the table form
    assert r.exit_code == 0 and "measurement-set split" in r.output


def test_nifti(tmp_path):
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    nib.save(nib.Nifti1Image(np.ones((8, 6, 4), np.float32), affine), tmp_path / "v.nii.gz")
    facts = info_json(tmp_path / "v.nii.gz")
    assert facts["shape"] == [8, 6, 4] and facts["voxel_size"] == [0.5, 0.5, 2.0]


def test_unknown_and_missing(tmp_path):
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["stuff"] = np.zeros(2)
    r = runner.invoke(app, ["info", str(tmp_path / "other.h5")])
    assert r.exit_code == 2 and "unknown contents" in r.output
    r = runner.invoke(app, ["info", str(tmp_path / "nope.h5")])
    assert r.exit_code == 2 and "no such file" in r.output and "Traceback" not in r.output
