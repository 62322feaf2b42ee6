"""No output is written over an input (issue 26): one table driving one test. Every case is refused
before anything is written, `--force` or not, in one line naming the output and the input, exit code 2,
and the folder of inputs is byte-identical afterwards (nothing changed, nothing added)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import h5py
import nibabel as nib
import numpy as np
import pytest

from tests.support.cli_runner import cli, ok
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file

pytestmark = pytest.mark.usefixtures("one_thread")

FAST_TRAIN = ["--stage", "teacher", "--steps", "1", "--batch", "4", "--size", "32", "--center-fraction", "0.2"]
NET = dict(features=[8, 16], num_res_blocks=1, attention_levels=[False, False], num_head_channels=8,
           norm_num_groups=8)
CT = dict(family="ct", image_size=32, n_angles=180, n_views=60, view_kind="sparse")

# (id, arguments, the output the line names, the problem it states); paths are relative to the test's
# copy of the inputs (the current folder), {tmp} is that folder spelled absolute
CASES = [
    ("reconstruct a fastMRI file onto itself, --force",
     ["reconstruct", "--input", "{tmp}/fastmri/a.h5", "--out", "{tmp}/fastmri/a.h5", "--method", "zero-filled",
      "--force"], "{tmp}/fastmri/a.h5", "is --input {tmp}/fastmri/a.h5"),
    ("reconstruct a fastMRI file onto itself, no --force",
     ["reconstruct", "--input", "{tmp}/fastmri/a.h5", "--out", "{tmp}/fastmri/a.h5", "--method", "zero-filled"],
     "{tmp}/fastmri/a.h5", "is --input"),
    ("reconstruct onto the input spelled relative",
     ["reconstruct", "--input", "{tmp}/fastmri/a.h5", "--out", "fastmri/../fastmri/a.h5", "--method",
      "zero-filled", "--force"], "fastmri/../fastmri/a.h5", "is --input {tmp}/fastmri/a.h5"),
    ("reconstruct onto the input through a symlinked folder",
     ["reconstruct", "--input", "{tmp}/fastmri/a.h5", "--out", "{tmp}/link/a.h5", "--method", "zero-filled",
      "--force"], "{tmp}/link/a.h5", "is --input {tmp}/fastmri/a.h5"),
    ("reconstruct onto a hard link of the input",
     ["reconstruct", "--input", "{tmp}/fastmri/a.h5", "--out", "{tmp}/hard.h5", "--method", "zero-filled",
      "--force"], "{tmp}/hard.h5", "is --input {tmp}/fastmri/a.h5"),
    ("reconstruct a fastMRI folder onto itself",
     ["reconstruct", "--input", "{tmp}/fastmri", "--out", "{tmp}/fastmri", "--method", "zero-filled", "--force"],
     "{tmp}/fastmri/a.h5", "is inside --input {tmp}/fastmri"),
    ("reconstruct a fastMRI folder into a folder inside it",
     ["reconstruct", "--input", "{tmp}/fastmri", "--out", "{tmp}/fastmri/recon", "--method", "zero-filled"],
     "{tmp}/fastmri/recon/a.h5", "is inside --input {tmp}/fastmri"),
    ("reconstruct a NIfTI onto itself",
     ["reconstruct", "--input", "{tmp}/nifti/v0.nii", "--out", "{tmp}/nifti/v0.nii", "--method", "zero-filled",
      "--force"], "{tmp}/nifti/v0.nii", "is --input {tmp}/nifti/v0.nii"),
    ("reconstruct a NIfTI whose std file would be the input",
     ["reconstruct", "--input", "{tmp}/v0_std.nii", "--out", "{tmp}/v0.nii", "--method", "zero-filled",
      "--n-samples", "2"], "{tmp}/v0_std.nii", "is --input {tmp}/v0_std.nii"),
    ("reconstruct a NIfTI folder onto itself",
     ["reconstruct", "--input", "{tmp}/nifti", "--out", "{tmp}/nifti", "--method", "zero-filled", "--force"],
     "{tmp}/nifti/v0.nii", "is inside --input {tmp}/nifti"),
    ("reconstruct a set into its own test.h5",
     ["reconstruct", "--input", "{tmp}/set", "--out", "{tmp}/set/test.h5", "--method", "zero-filled", "--force"],
     "{tmp}/set/test.h5", "is inside --input {tmp}/set"),
    ("reconstruct a set into a new file inside it",
     ["reconstruct", "--input", "{tmp}/set", "--out", "{tmp}/set/recon.h5", "--method", "zero-filled"],
     "{tmp}/set/recon.h5", "is inside --input {tmp}/set"),
    ("data make --out the --input folder, --force",
     ["data", "make", "--source", "nifti", "--input", "{tmp}/nifti", "--out", "{tmp}/nifti", "--force"],
     "{tmp}/nifti", "is --input {tmp}/nifti"),
    ("data make --out the --input file, --force",
     ["data", "make", "--source", "nifti", "--input", "{tmp}/nifti/v0.nii", "--out", "{tmp}/nifti/v0.nii",
      "--force"], "{tmp}/nifti/v0.nii", "is --input {tmp}/nifti/v0.nii"),
    ("data make --out inside --input",
     ["data", "make", "--source", "nifti", "--input", "{tmp}/nifti", "--out", "{tmp}/nifti/set"],
     "{tmp}/nifti/set", "is inside --input {tmp}/nifti"),
    ("data make --input inside the --out it would replace",
     ["data", "make", "--source", "nifti", "--input", "{tmp}/outer/nifti", "--out", "{tmp}/outer", "--force"],
     "{tmp}/outer", "holds --input {tmp}/outer/nifti, which replacing it (--force) would delete"),
    ("data make --test-input inside the --out it would replace",
     ["data", "make", "--source", "nifti", "--input", "{tmp}/nifti", "--test-input", "{tmp}/outer/nifti",
      "--out", "{tmp}/outer", "--force"], "{tmp}/outer", "holds --test-input {tmp}/outer/nifti"),
    ("data make --config inside the set it would replace",
     ["data", "make", "--size", "32", "--n-train", "4", "--n-test", "2", "--config", "{tmp}/set/options.yaml",
      "--out", "{tmp}/set", "--force"], "{tmp}/set", "holds --config {tmp}/set/options.yaml"),
    ("train --out the --data set",
     ["train", "--data", "{tmp}/set", "--out", "{tmp}/set", *FAST_TRAIN], "{tmp}/set", "is --data {tmp}/set"),
    ("train --out inside a raw --data folder",
     ["train", "--data", "{tmp}/nifti", "--out", "{tmp}/nifti/run", *FAST_TRAIN], "{tmp}/nifti/run",
     "is inside --data {tmp}/nifti"),
    ("report on a run inside its own data",
     ["report", "{tmp}/set/run"], "{tmp}/set/run", "is inside the run's data set;"),
    ("sample over its --model, --force",
     ["sample", "--model", "{tmp}/model.h5", "-n", "2", "--out", "{tmp}/model.h5", "--force"], "{tmp}/model.h5",
     "is --model {tmp}/model.h5"),
    ("sample --split with a file over its --model",
     ["sample", "--model", "{tmp}/s_0001.png", "-n", "2", "--out", "{tmp}/s.png", "--split", "--force"],
     "{tmp}/s_0001.png", "is --model"),
    ("evaluate --json over a target .h5",
     ["evaluate", "--targets", "{tmp}/fastmri", "--predictions", "{tmp}/pred", "--json", "{tmp}/fastmri/a.h5"],
     "{tmp}/fastmri/a.h5", "is inside --targets {tmp}/fastmri"),
    ("evaluate --json inside --predictions",
     ["evaluate", "--targets", "{tmp}/fastmri", "--predictions", "{tmp}/pred", "--json", "{tmp}/pred/m.json"],
     "{tmp}/pred/m.json", "is inside --predictions {tmp}/pred"),
    ("evaluate --json over --samples",
     ["evaluate", "--samples", "{tmp}/a.npy", "--reference", "{tmp}/b.npy", "--json", "{tmp}/a.npy"],
     "{tmp}/a.npy", "is --samples {tmp}/a.npy"),
    ("evaluate --json over an .h5 that is no input",
     ["evaluate", "--targets", "{tmp}/fastmri", "--predictions", "{tmp}/pred", "--json", "{tmp}/set/test.h5"],
     "{tmp}/set/test.h5", "exists and is not an earlier `rsd-sci evaluate --json` output"),
    ("evaluate --json over a text file",
     ["evaluate", "--samples", "{tmp}/a.npy", "--reference", "{tmp}/b.npy", "--json", "{tmp}/notes.txt"],
     "{tmp}/notes.txt", "exists and is not an earlier `rsd-sci evaluate --json` output"),
    ("evaluate --json over JSON of another program",
     ["evaluate", "--samples", "{tmp}/a.npy", "--reference", "{tmp}/b.npy", "--json", "{tmp}/other.json"],
     "{tmp}/other.json", "exists and is not an earlier `rsd-sci evaluate --json` output"),
    ("evaluate --json over a folder",
     ["evaluate", "--samples", "{tmp}/a.npy", "--reference", "{tmp}/b.npy", "--json", "{tmp}/outer"],
     "{tmp}/outer", "exists and is not an earlier `rsd-sci evaluate --json` output"),
]


def _model_file(path):
    """A small CT generator (random weights) in rsd-sci's safetensors format, under any file name."""
    import torch

    from rsd_sci.diffusion.model import build_model
    from rsd_sci.engine.checkpoint import export_safetensors

    state = build_model(CT, NET, 0.0, "generator").denoiser.state_dict()
    meta = dict(kind="generator", modality="ct", operator=CT, network=NET, member="ambient", sigma_init=2.5,
                sigma_n={"max": 0.0, "mean": 0.0}, bank={"y_dtype": "float32", "y_shape": [1, 60, 45]})
    export_safetensors(path, state | {"bank.sigma_n": torch.zeros(16)}, meta)


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """The inputs every case starts from (each test works on its own copy)."""
    root = tmp_path_factory.mktemp("originals")
    ok("data", "make", "--size", 32, "--n-train", 4, "--n-test", 2, "--center-fraction", 0.2, "--out", root / "set")
    (root / "set" / "options.yaml").write_text("seed: 3\n")
    (root / "set" / "run").mkdir()
    (root / "set" / "run" / "config.yaml").write_text("modality: mri\npreset: tiny\ndata: set\n")
    for folder in ("fastmri", "pred", "nifti", "outer/nifti"):
        (root / folder).mkdir(parents=True)
    for v, name in enumerate(("a.h5", "b.h5")):
        write_fastmri_file(root / "fastmri" / name, make_fastmri_kspace(2, 1, 64, 32, seed=v), recon_size=(32, 24))
        with h5py.File(root / "pred" / name, "w") as f:
            f["reconstruction"] = np.random.default_rng(v).random((2, 32, 24)).astype(np.float32)
    for i in range(3):
        volume = np.random.default_rng(i).random((32, 32, 6)).astype(np.float32)
        for folder in ("nifti", "outer/nifti"):
            nib.save(nib.Nifti1Image(volume, np.eye(4)), root / folder / f"v{i}.nii")
    shutil.copy(root / "nifti" / "v0.nii", root / "v0_std.nii")
    for name, seed in (("a.npy", 0), ("b.npy", 1)):
        np.save(root / name, np.random.default_rng(seed).random((4, 16, 16)).astype(np.float32))
    _model_file(root / "model.h5")
    shutil.copy(root / "model.h5", root / "s_0001.png")   # a model under the name of a --split output
    (root / "notes.txt").write_text("my notes\n")
    (root / "other.json").write_text('{"mean": {"psnr": 1.0}}\n')
    return root


@pytest.fixture
def inputs(originals, tmp_path, monkeypatch):
    """A copy of the originals as the current folder, with a symlink and a hard link into it."""
    work = tmp_path / "work"
    shutil.copytree(originals, work)
    (work / "link").symlink_to(work / "fastmri")
    os.link(work / "fastmri" / "a.h5", work / "hard.h5")
    monkeypatch.chdir(work)
    return work


def _tree(root) -> dict:
    """Every file and symlink under `root`: its content's sha256, or where the link points."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found[path] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[path] = hashlib.sha256(f.read()).hexdigest()
    return found


@pytest.mark.parametrize("args, named, problem", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_an_output_over_an_input_is_refused_and_nothing_changes(inputs, args, named, problem):
    before = _tree(inputs)
    r = cli(*[a.format(tmp=inputs) for a in args])
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"rsd-sci: error: {named.format(tmp=inputs)}: "), r.output
    assert problem.format(tmp=inputs) in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
    assert _tree(inputs) == before


def test_evaluate_replaces_its_own_earlier_json(inputs):
    """`--json` may replace what evaluate wrote before (it says so with its `written_by` key), and an
    empty file (nothing to lose: e.g. made by mktemp)."""
    (inputs / "empty.json").write_text("")
    for target in ("m.json", "m.json", "empty.json"):
        ok("evaluate", "--samples", inputs / "a.npy", "--reference", inputs / "b.npy", "--json", inputs / target,
           "--device", "cpu")
        assert json.loads((inputs / target).read_text())["written_by"] == "rsd-sci evaluate"
