"""Hostile input, round three (issue 26): damaged or foreign checkpoints before a resume, a torn log, a huge
.npy header, a NaN affine, a count no output holds, unbounded values, warnings before an error and a
swallowed Ctrl-C. Each ends in one line naming the file and the problem, exit 2 (Ctrl-C 130), no traceback."""

from __future__ import annotations

import os
import shutil
import struct
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from tests.support.cli_runner import cli, ok

RUN = ["--size", "32", "--n-train", "16", "--n-test", "8", "--preset", "tiny", "--batch", "4", "--no-eval"]


def _one_line(r, message: str, code: int = 2) -> None:
    assert r.exit_code == code and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished MRI run and a CT run (teacher and distillation, 2 steps each), never written by a case."""
    tmp = tmp_path_factory.mktemp("runs")
    for modality in ("mri", "ct"):
        ok("train", "--out", tmp / modality, "--modality", modality, *RUN, "--steps", 2, "--distill-steps", 2)
    return tmp


def _teacher_resume(runs, tmp_path, state=None):
    """A copy of the MRI run stopped in its teacher stage, with `state` as its teacher checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(runs / "mri", run)
    for name in ("teacher.safetensors", "generator.safetensors"):
        (run / name).unlink()
    if state is not None:
        shutil.copy(state, run / "checkpoints" / "teacher" / "state.pt")
    return run


def test_a_teacher_checkpoint_holding_another_dict(runs, tmp_path):
    run = _teacher_resume(runs, tmp_path)
    torch.save({"weights": torch.ones(1)}, run / "checkpoints" / "teacher" / "state.pt")
    _one_line(cli("train", "--out", run), "state.pt: is not a checkpoint of this stage (it has no 'model' entry)")


@pytest.mark.parametrize("source, message", [("ct/checkpoints/teacher/state.pt", "does not fit this stage's model (size mismatch"),
                                             ("mri/checkpoints/distill/state.pt",
                                              "is not a checkpoint of this stage (it has no 'model' entry)")],
                         ids=["a CT run's", "the distillation's"])
def test_another_checkpoint_in_the_teachers_place(runs, tmp_path, source, message):
    run = _teacher_resume(runs, tmp_path, runs / source)
    _one_line(cli("train", "--out", run), f"teacher/state.pt: {message}")


def test_a_checkpoint_with_a_damaged_pickle_index(runs, tmp_path):
    run = _teacher_resume(runs, tmp_path)
    state = run / "checkpoints" / "teacher" / "state.pt"
    data = bytearray(state.read_bytes())
    data[data.find(b"conv_in.conv.weight")] = ord("k")   # a flipped byte in a key name
    state.write_bytes(bytes(data))
    _one_line(cli("train", "--out", run), "state.pt: damaged: its contents do not match the digest")


def test_a_checkpoint_beyond_the_stages_steps(runs, tmp_path):
    run = _teacher_resume(runs, tmp_path)
    state = run / "checkpoints" / "teacher" / "state.pt"
    saved = torch.load(state, weights_only=True)
    saved.pop("digest", None)   # as an older version wrote it (a digest would call the edit damage)
    torch.save(saved | {"step": 100}, state)
    _one_line(cli("train", "--out", run), "state.pt: is at step 100, outside this stage's 0 to 2 steps")


def test_a_torn_log_does_not_fail_a_finished_run(runs, tmp_path, caplog):
    run = tmp_path / "run"
    shutil.copytree(runs / "mri", run)
    with open(run / "log.jsonl", "ab") as log:
        log.write(b'{"stage": "distill", "st\xff\xfe\n[1, 2]\n{"stage": "teac')   # invalid UTF-8, not a record, cut
    first = len((runs / "mri" / "log.jsonl").read_bytes().splitlines()) + 1
    r = ok("train", "--out", run)
    assert "teacher:" in r.output and "distill:" in r.output, r.output
    assert [rec.getMessage() for rec in caplog.records if "log.jsonl" in rec.getMessage()] == [
        f"{run / 'log.jsonl'}: skipped 3 line(s) that are not JSON records (a write cut short?), the first line {first}"]


def test_a_distillation_resume_after_an_image_size_change(runs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(runs / "mri", run)
    (run / "generator.safetensors").unlink()
    shutil.rmtree(run / "data")
    ok("data", "make", "--out", run / "data", "--size", 48, "--n-train", 16, "--n-test", 8)
    _one_line(cli("train", "--out", run), "train.h5: changed since this run started: operator shape [48, 48]")
    (run / "data_identity.json").unlink()   # a run from before the identity record: the checkpoint still says no
    _one_line(cli("train", "--out", run), "distill/state.pt: does not fit this stage's model (size mismatch")


def test_an_npy_header_claiming_373_gib_is_refused_before_allocating(tmp_path):
    big, small = tmp_path / "big.npy", tmp_path / "small.npy"
    with open(big, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                 "shape": (100000, 1000, 1000)})
        f.write(b"\0" * 64)
    np.save(small, np.ones((4, 16, 16), np.float32))
    _one_line(cli("evaluate", "--samples", big, "--reference", small),
              "big.npy: its header declares float32 of shape (100000, 1000, 1000) (372.5 GiB), but the file holds")


def test_reconstruct_of_a_nifti_with_a_nan_affine(runs, tmp_path):
    path = tmp_path / "nan.nii"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((32, 32, 4)).astype(np.float32), np.eye(4)), path)
    data = bytearray(path.read_bytes())
    data[280:284] = struct.pack("<f", float("nan"))   # srow_x[0] (nibabel will not write a NaN affine)
    path.write_bytes(bytes(data))
    _one_line(cli("reconstruct", "--model", runs / "mri", "--input", path, "--out", tmp_path / "out.nii.gz",
                  "--method", "generator"), "nan.nii: its affine (voxel-to-world matrix) holds NaN or Inf values")
    assert not (tmp_path / "out.nii.gz").exists()


def test_sample_n_that_one_nifti_volume_cannot_hold(runs, tmp_path):
    _one_line(cli("sample", "--model", runs / "mri", "-n", 100000, "--out", tmp_path / "s.nii.gz"),
              "s.nii.gz: 100000 images do not fit in one NIfTI-1 volume (at most 32767 slices)")


def test_an_unbounded_value_is_not_echoed_whole(runs, tmp_path):
    r = cli("sample", "--model", runs / "mri", "--sampler", "x" * 10**7, "--out", tmp_path / "s.npy")
    _one_line(r, "unknown sampler 'xxx")
    assert len(r.output) < 400 and " ... " in r.output, len(r.output)


def test_warnings_are_not_printed_before_an_error(tmp_path):
    """A LoDoPaB file of another size than 362 x 362 is said in a warning; a later file without slices
    refuses the command, whose one line is then all that is printed (a subprocess: under pytest, logging
    has handlers that the console script's output does not go through)."""
    import subprocess

    import h5py

    folder = tmp_path / "lodopab"
    folder.mkdir()
    for i, n in enumerate((4, 4, 0)):
        with h5py.File(folder / f"ground_truth_train_{i:03d}.hdf5", "w") as f:
            f["data"] = np.random.default_rng(i).random((n, 64, 64)).astype(np.float32)
    p = subprocess.run([sys.executable, "-m", "cli", "data", "make", "--modality", "ct", "--source", "lodopab",
                        "--input", folder, "--out", tmp_path / "set", "--size", "16"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parents[2], env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert p.returncode == 2 and p.stderr.splitlines() == [
        f"rsd-sci: error: {folder / 'ground_truth_train_002.hdf5'}: holds no slices"], p.stderr
