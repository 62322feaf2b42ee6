"""`rsd-sci info PATH [--json]` on each kind of file it knows, and a clear error on the rest."""

import json

import h5py
import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from cli.app import app
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file

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


def test_model_file(tmp_path):
    """A generator file from its header: operator, preset, steps, selected iteration, weights counted
    without the operator bank; a safetensors file of another tool is refused in one line."""
    import torch
    from safetensors.torch import save_file

    from rsd_sci.engine.checkpoint import export_safetensors

    op = {"family": "ct", "n_views": 60, "n_angles": 180, "view_kind": "sparse", "image_size": 64}
    meta = dict(kind="generator", modality="ct", operator=op, member="ambient", network={"features": [8]},
                config={"preset": "quality", "steps": 2400, "distill_steps": 400, "seed": 1}, selected_step=300,
                measurement_spectrum=0.02, loss_space="full", sigma_init=2.5, sigma_n={"max": 0.0, "mean": 0.0})
    export_safetensors(tmp_path / "g.safetensors", {"w": torch.zeros(3, 4), "b": torch.zeros(5),
                                                    "bank.sigma_n": torch.zeros(16)}, meta)
    facts = info_json(tmp_path / "g.safetensors")
    assert facts["kind"] == "rsd-sci generator" and facts["operator"]["n_views"] == 60
    assert facts["preset"] == "quality" and facts["teacher_steps"] == 2400 and facts["distill_iterations"] == 400
    assert facts["selected_step"] == 300 and facts["measurement_spectrum"] == 0.02
    assert facts["parameters"] == 17 and facts["operator_bank"] == "16 held-out operators"
    r = runner.invoke(app, ["info", str(tmp_path / "g.safetensors")])   # the table form
    assert r.exit_code == 0 and "rsd-sci generator" in r.output
    save_file({"w": torch.zeros(2)}, str(tmp_path / "other.safetensors"))
    r = runner.invoke(app, ["info", str(tmp_path / "other.safetensors")])
    assert r.exit_code == 2 and "without rsd-sci metadata" in r.output and len(r.output.strip().splitlines()) == 1
