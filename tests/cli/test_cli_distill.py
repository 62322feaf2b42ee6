"""`rsd-sci train --stage all|distill` and `rsd-sci sample` on small phantoms, in-process."""

from __future__ import annotations

import json
import shutil

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from matplotlib.image import imread
from safetensors.torch import load_file

from tests.support.cli_runner import cli, ok
from rsd_sci.engine.checkpoint import load_safetensors
from rsd_sci.engine.runlog import read_log

TINY = ["--size", "32", "--n-train", "16", "--n-test", "8", "--preset", "tiny", "--batch", "4",
        "--center-fraction", "0.2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """teacher (4 steps) then distillation (3 iterations), the default --stage all (the evaluation is
    tested in test_cli_report.py)."""
    out = tmp_path_factory.mktemp("runs") / "mri"
    r = ok("train", "--modality", "mri", "--out", out, "--steps", 4, "--distill-steps", 3, "--no-eval", *TINY)
    assert "generator.safetensors" in r.output and "selection signal" in r.output
    return out


def test_stage_all_writes_a_generator_with_metadata_and_bank(run):
    state, meta = load_safetensors(run / "generator.safetensors")
    assert meta["kind"] == "generator" and meta["modality"] == "mri" and meta["sigma_init"] == 2.5
    assert meta["operator"]["family"] == "mri" and meta["bank"]["y_dtype"] == "complex64"
    assert state["bank.masks"].shape[0] == 8 and "bank.sigma_n" in state   # n_test 8 < bank size 16
    distill = [r for r in read_log(run / "log.jsonl") if r["stage"] == "distill"]
    assert [r["step"] for r in distill][-1] == 3
    assert distill[-1]["heldout_sw"] > 0 and distill[-1]["measurement_spectrum"] > 0 and np.isfinite(distill[-1]["fake_loss"])
    assert (run / "checkpoints" / "distill" / "state.pt").is_file()


def test_distill_resumes_to_the_same_generator(run, tmp_path):
    """3 iterations straight equal 2, then resumed to 3 (the same command with more --distill-steps)."""
    part = tmp_path / "part"
    shutil.copytree(run, part, ignore=shutil.ignore_patterns("generator.safetensors", "distill"))
    args = ("train", "--modality", "mri", "--out", part, "--steps", 4, "--stage", "distill", *TINY)
    ok(*args, "--distill-steps", 2)
    ok(*args, "--distill-steps", 3)
    a, b = load_file(run / "generator.safetensors"), load_file(part / "generator.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


def test_a_run_from_an_older_version_resumes_with_the_presets_new_settings(run, tmp_path):
    """A config.yaml written before --loss-space, --sigma-floor and --fake-updates existed resumes."""
    import yaml

    old = tmp_path / "old"
    shutil.copytree(run, old)
    cfg = yaml.safe_load((old / "config.yaml").read_text())
    for key in ("loss_space", "sigma_floor", "fake_updates"):
        cfg.pop(key)
    (old / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    ok("train", "--modality", "mri", "--out", old, "--steps", 4, "--distill-steps", 4, "--no-eval", *TINY)
    assert read_log(old / "log.jsonl")[-1]["step"] == 4


def test_a_distillation_resumed_from_another_teacher_is_refused(run, tmp_path):
    """--teacher may change between sessions, but not to another teacher than the checkpoint's."""
    from rsd_sci.engine.checkpoint import export_safetensors

    state, meta = load_safetensors(run / "teacher.safetensors")
    other = tmp_path / "other.safetensors"
    meta = {k: v for k, v in meta.items() if k not in ("format", "rsd_sci_version")}
    export_safetensors(other, {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}, meta)
    args = ("train", "--modality", "mri", "--stage", "distill", "--data", run / "data", "--out", tmp_path / "d",
            "--preset", "tiny", "--batch", 4)
    ok(*args, "--teacher", run / "teacher.safetensors", "--distill-steps", 1)
    r = cli(*args, "--teacher", other, "--distill-steps", 2)
    assert r.exit_code == 2 and "is not the teacher this run's distillation started from" in r.output
    assert str(other) in r.output


def test_distill_from_another_teacher_file(run, tmp_path):
    ok("train", "--modality", "mri", "--stage", "distill", "--teacher", run / "teacher.safetensors",
       "--data", run / "data", "--out", tmp_path / "d", "--distill-steps", 1, "--preset", "tiny", "--batch", 4)
    assert load_safetensors(tmp_path / "d" / "generator.safetensors")[1]["teacher"].endswith("teacher.safetensors")


@pytest.mark.parametrize("args, message", [
    (["--stage", "distill", "--teacher", "missing.safetensors"], "no teacher to distil"),
    (["--stage", "distil"], "unknown stage"),
    (["--distill-steps", "0"], "--distill-steps must be at least 1"),
    (["--fake-updates", "0"], "--fake-updates must be at least 1"),
    (["--loss-space", "pixels"], "--loss-space must be auto, projected or full"),
    (["--sigma-floor", "-0.1"], "--sigma-floor must be at least 0"),
])
def test_bad_distill_flags(tmp_path, args, message):
    r = cli("train", "--modality", "mri", "--out", tmp_path / "x", *TINY, *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output


def test_distillation_settings_reach_the_generator(run, tmp_path):
    """--loss-space, --sigma-floor and --fake-updates are used (the generator differs from the default
    run's) and recorded in the file's metadata."""
    out = tmp_path / "variant"
    ok("train", "--modality", "mri", "--stage", "distill", "--teacher", run / "teacher.safetensors", "--out", out,
       "--distill-steps", 3, "--loss-space", "full", "--sigma-floor", "0.1", "--fake-updates", 2, *TINY)
    default, default_meta = load_safetensors(run / "generator.safetensors")
    assert default_meta["loss_space"] == "full"   # --loss-space auto resolved for an MRI teacher
    state, meta = load_safetensors(out / "generator.safetensors")
    assert (meta["loss_space"], meta["sigma_floor"], meta["config"]["fake_updates"]) == ("full", 0.1, 2)
    assert any(not torch.equal(state[k], default[k]) for k in state if not k.startswith("bank"))


def test_fake_warmup_holds_the_generator_and_the_critic_trains(run, tmp_path):
    """--fake-warmup 2 of 2 iterations: the exported generator is still the teacher (only the fake score
    moved); --gan-weight logs the critic's loss and the generator's adversarial term."""
    out = tmp_path / "warm"
    ok("train", "--modality", "mri", "--stage", "distill", "--teacher", run / "teacher.safetensors", "--out", out,
       "--distill-steps", 2, "--fake-warmup", 2, "--gan-weight", 100, *TINY)
    teacher, _ = load_safetensors(run / "teacher.safetensors")
    state, meta = load_safetensors(out / "generator.safetensors")
    assert meta["config"]["fake_warmup"] == 2 and meta["config"]["gan_weight"] == 100
    assert all(torch.equal(state[k], teacher[k]) for k in state if not k.startswith("bank"))
    last = [r for r in read_log(out / "log.jsonl") if r["stage"] == "distill"][-1]
    assert last["critic_loss"] > 0 and last["g_loss"] == 0.0


def test_the_aligner_trains_beside_the_generator(run, tmp_path):
    """--adm-weight: the aligner's loss and the generator's alignment term are logged, the weight saved."""
    out = tmp_path / "adm"
    ok("train", "--modality", "mri", "--stage", "distill", "--teacher", run / "teacher.safetensors", "--out", out,
       "--distill-steps", 1, "--adm-weight", 100, *TINY)
    _, meta = load_safetensors(out / "generator.safetensors")
    assert meta["config"]["adm_weight"] == 100
    last = [r for r in read_log(out / "log.jsonl") if r["stage"] == "distill"][-1]
    assert last["aligner_loss"] > 0 and last["g_alignment"] > 0


def test_teacher_of_another_modality_is_refused(run, tmp_path):
    r = cli("train", "--modality", "ct", "--stage", "distill", "--teacher", run / "teacher.safetensors",
            "--out", tmp_path / "ct", *TINY)
    assert r.exit_code == 2 and "is a mri teacher" in r.output


def test_sample_nifti_png_and_split(run, tmp_path):
    ok("sample", "--model", run, "-n", 5, "--out", tmp_path / "s.nii.gz", "--batch", 2)
    volume = nib.load(tmp_path / "s.nii.gz").get_fdata()
    assert volume.shape == (32, 32, 5) and np.isfinite(volume).all() and (volume >= 0).all()  # magnitude
    ok("sample", "--model", run, "-n", 5, "--out", tmp_path / "s.png")
    assert imread(tmp_path / "s.png").shape[:2] == (2 * 32 + 2, 3 * 32 + 4)
    ok("sample", "--model", run, "-n", 3, "--out", tmp_path / "p.nii.gz", "--split")
    assert sorted(p.name for p in tmp_path.glob("p_*.nii.gz")) == ["p_0000.nii.gz", "p_0001.nii.gz", "p_0002.nii.gz"]


def test_samples_do_not_depend_on_batch_and_complex_keeps_channels(run, tmp_path):
    ok("sample", "--model", run, "-n", 4, "--out", tmp_path / "a.npy", "--batch", 4, "--complex")
    ok("sample", "--model", run, "-n", 3, "--out", tmp_path / "b.npy", "--batch", 1, "--complex")
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (4, 2, 32, 32)
    np.testing.assert_allclose(a[:3], b, rtol=1e-4, atol=1e-5)
    ok("sample", "--model", run, "-n", 4, "--out", tmp_path / "m.npy")
    np.testing.assert_allclose(np.load(tmp_path / "m.npy"), np.hypot(a[:, 0], a[:, 1]), rtol=1e-4, atol=1e-5)


def test_teacher_samplers_and_data_scale(run, tmp_path):
    ok("sample", "--model", run / "teacher.safetensors", "--sampler", "ambient", "--steps", 3, "-n", 2,
       "--out", tmp_path / "t.h5")
    with h5py.File(tmp_path / "t.h5") as f:
        assert f["samples"].shape == (2, 32, 32) and "ambient" in f.attrs["metadata"]
        stopped = f["samples"][:]
        assert json.loads(f.attrs["metadata"])["stop_sigma"] == 0.1   # MRI teachers stop at 0.1 by default
    ok("sample", "--model", run / "teacher.safetensors", "--sampler", "ambient", "--steps", 3, "-n", 2,
       "--stop-sigma", 0, "--out", tmp_path / "full.h5")
    with h5py.File(tmp_path / "full.h5") as f:
        assert json.loads(f.attrs["metadata"])["stop_sigma"] == 0.0 and not np.allclose(f["samples"][:], stopped)
    ok("sample", "--model", run, "-n", 2, "--out", tmp_path / "n.npy")
    ok("sample", "--model", run, "-n", 2, "--out", tmp_path / "d.npy", "--scale", 4.0)
    np.testing.assert_allclose(np.load(tmp_path / "d.npy"), np.load(tmp_path / "n.npy") / 4.0, rtol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--model", "{run}/teacher.safetensors", "--sampler", "onestep"], "needs a generator.safetensors"),
    (["--model", "{run}/generator.safetensors", "--sampler", "heun"], "needs a teacher.safetensors"),
    (["--model", "{run}/config.yaml"], "not a safetensors model file"),
    (["--model", "{run}", "--out", "{tmp}/x.txt"], "unknown output format"),
    (["--model", "{run}", "-n", "0"], "-n must be at least 1"),
    (["--model", "{run}", "--sampler", "heun", "--stop-sigma", "-1"], "--stop-sigma must be at least 0"),
])
def test_sample_bad_input(run, tmp_path, args, message):
    args = [a.format(run=run, tmp=tmp_path) for a in args]
    out = [] if "--out" in args else ["--out", str(tmp_path / "o.npy")]
    r = cli("sample", *args, *out)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("modality", [["--modality", "ct", "--views", "20"],
                                      ["--modality", "image", "--corruption", "noise"],
                                      ["--modality", "image", "--corruption", "inpaint"],
                                      ["--modality", "image", "--corruption", "blur"],
                                      ["--modality", "image", "--corruption", "downsample"]],
                         ids=["ct", "image-noise", "image-inpaint", "image-blur", "image-downsample"])
def test_other_families_distil_and_sample(tmp_path, modality):
    """Every family the CLI trains, end to end (MRI: the module's run): the same stage, evaluation and
    sampler for CT (FBP input), data-space (Tweedie; plain for noiseless blur and down-sampling, whose
    distillation loads the teacher as any other) and pixel-mask teachers."""
    out = tmp_path / "run"
    ok("train", *modality, "--out", out, "--size", 32, "--n-train", 8, "--n-test", 4, "--batch", 4,
       "--steps", 2, "--distill-steps", 1, "--no-eval")
    assert not (out / "report.md").exists() and not (out / "eval").exists()
    r = ok("report", out, "--slices", 2, "--adps-steps", 3, "--generator-steps", 3, "--n-samples", 4)
    assert "report:" in r.output and (out / "report.md").is_file() and (out / "figures" / "samples.png").is_file()
    recon = json.loads((out / "eval" / "metrics.json").read_text())["reconstruction"]
    if modality[1] == "ct":   # scored with air at 0 inside the scanned disc (in x' with the corners: ~0.3)
        assert recon["fbp"]["mean"]["nmse"] < 0.1
    else:   # the corrupted image as the baseline; A-DPS only with a teacher of clean images
        clean_prior = modality[3] in ("noise", "inpaint")
        assert list(recon) == ["corrupted", *(["adps"] if clean_prior else []), "generator"]
        if not clean_prior:
            r = cli("reconstruct", "--input", out / "data", "--model", out, "--method", "adps",
                    "--out", tmp_path / "r.h5")
            assert r.exit_code == 2 and "A-DPS cannot use it" in r.output, r.output
    ok("sample", "--model", out, "-n", 3, "--out", tmp_path / "s.npy")
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (3, 32, 32) and np.isfinite(samples).all()
