"""Defaults adapt to the data instead of refusing, a refused start leaves nothing in the way of the corrected
command, refusals state true counts, and what the tool writes as JSON is valid JSON (issue 26)."""

from __future__ import annotations

import functools
import json
import logging

import h5py
import numpy as np
import pytest
import torch
import yaml

from tests.support.cli_runner import cli, ok
from rsd_sci.data.finite_json import read_finite_json
from rsd_sci.apps.train import fit_batch
from rsd_sci.errors import InputError

pytestmark = pytest.mark.usefixtures("one_thread")
QUICK = ["--preset", "tiny", "--stage", "teacher", "--steps", "1"]


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    """An MRI measurement set of 3 training and 2 test measurements (16 x 16): smaller than any preset's batch."""
    out = tmp_path_factory.mktemp("sets") / "three"
    ok("data", "make", "--out", out, "--size", 16, "--n-train", 3, "--n-test", 2, "--center-fraction", 0.2)
    return out


def _one_line_refusal(r, message):
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output


def test_a_presets_batch_is_lowered_to_a_small_set_and_kept_on_resume(three, tmp_path, caplog):
    run = tmp_path / "run"
    caplog.set_level(logging.WARNING)
    ok("train", "--data", three, "--out", run, *QUICK)
    assert [r.getMessage() for r in caplog.records] == [
        f"{three.resolve()}: the tiny preset's batch 8 is larger than its 3 training measurements; training with batch 3 "
        "(--batch sets another)"]
    assert yaml.safe_load((run / "config.yaml").read_text())["batch"] == 3
    caplog.clear()
    ok("train", "--data", three, "--out", run, *QUICK[:-1], 2)   # the same command, one step more: resumes
    assert not caplog.records and yaml.safe_load((run / "config.yaml").read_text())["batch"] == 3
    _one_line_refusal(cli("train", "--data", three, "--out", tmp_path / "typed", *QUICK, "--batch", 8),
                      "--batch 8 is larger than its 3 training measurements; use at most 3")


def test_a_presets_batch_is_split_evenly_over_processes_and_a_typed_one_is_refused():
    assert fit_batch(8, 5, world_size=2, adapt=True) == 4      # fits the set, and one equal share per process
    assert fit_batch(8, 100, world_size=3, adapt=True) == 6
    assert fit_batch(2, 100, world_size=4, adapt=True) == 4    # at least one sample per process
    with pytest.raises(InputError, match="--batch 7 does not split evenly over 2 processes; use a multiple of 2"):
        fit_batch(7, 100, world_size=2)
    with pytest.raises(InputError, match="its 3 training measurement\\(s\\) are fewer than the 4 processes"):
        fit_batch(8, 3, world_size=4, adapt=True)


def test_a_refused_start_leaves_no_config_that_conflicts(three, tmp_path):
    """The data's modality is checked once the data are there; the corrected command then starts."""
    run = tmp_path / "run"
    _one_line_refusal(cli("train", "--data", three, "--modality", "ct", "--out", run, *QUICK, "--batch", 3),
                      f"{three.resolve()}: holds mri data, not --modality ct")
    assert not run.exists()
    ok("train", "--data", three, "--out", run, *QUICK)
    assert (run / "teacher.safetensors").is_file()


def test_a_refused_start_in_the_users_folder_removes_only_what_it_added(tmp_path):
    """Data built for a refused start go with it: the corrected command, with another --size, does not train
    on them."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    phantoms = ["--n-train", 3, "--n-test", 2, "--center-fraction", 0.2, *QUICK]
    _one_line_refusal(cli("train", "--out", run, "--size", 16, "--batch", 5, *phantoms),
                      "--batch 5 is larger than its 3 training measurements")
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    ok("train", "--out", run, "--size", 24, "--batch", 3, *phantoms)
    with h5py.File(run / "data" / "train.h5") as f:
        assert f["measurements"].shape[-2:] == (24, 24)


def test_the_same_data_spelled_differently_is_the_same_run(three, tmp_path, monkeypatch):
    monkeypatch.chdir(three.parent)
    (tmp_path / "link").symlink_to(three)
    run = tmp_path / "run"
    ok("train", "--data", three.name, "--out", run, *QUICK, "--batch", 3)
    for spelling in (three, f"./{three.name}/", tmp_path / "link"):
        ok("train", "--data", spelling, "--out", run, *QUICK, "--batch", 3, "--dry-run")
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == str(three.resolve())   # from any folder


def _lodopab_file(folder, n_slices):
    """A LoDoPaB ground-truth file of n slices at the published 362 x 362."""
    folder.mkdir()
    with h5py.File(folder / "ground_truth_train_000.hdf5", "w") as f:
        f["data"] = np.random.default_rng(n_slices).random((n_slices, 362, 362)).astype(np.float32)
    return folder / "ground_truth_train_000.hdf5"


def test_one_volume_too_short_to_split_states_the_true_minimum(tmp_path):
    """4 or 5 slices leave no training slice once 2 are dropped on each side of the test block; 6 do."""
    make = ["data", "make", "--modality", "ct", "--source", "lodopab", "--size", 16, "--views", 30, "--input"]
    for n in (4, 5):
        _one_line_refusal(cli(*make, _lodopab_file(tmp_path / str(n), n), "--out", tmp_path / f"set{n}"),
                          f"ground_truth_train_000.hdf5: has {n} slice(s): splitting one volume into train and test, "
                          "with 2 slices dropped on each side of the test block, needs at least 6 (or give "
                          "--test-input)")
    ok(*make, _lodopab_file(tmp_path / "6", 6), "--out", tmp_path / "set6")
    assert yaml.safe_load((tmp_path / "set6" / "card.yaml").read_text())["n_train"] == 1


def _strict_json(path):
    """The file parsed as JSON proper: Infinity and NaN tokens are refused."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_non_finite_metrics_are_written_as_null_with_a_note(tmp_path):
    """An all-zero target: NMSE inf, PSNR -inf and SSIM nan, and their mean and std, are null in valid JSON."""
    for folder, key in (("targets", "reconstruction_rss"), ("predictions", "reconstruction")):
        (tmp_path / folder).mkdir()
        for name, value in (("zero.h5", 0.0 if folder == "targets" else 1.0), ("ones.h5", 1.0)):
            with h5py.File(tmp_path / folder / name, "w") as f:
                f[key] = np.full((2, 8, 8), value, np.float32)
    out = tmp_path / "metrics.json"
    r = cli("evaluate", "--targets", tmp_path / "targets", "--predictions", tmp_path / "predictions", "--json", out)
    assert r.exit_code == 0 and "RuntimeWarning" not in r.output, r.output
    written = _strict_json(out)
    assert written["per_volume"]["zero.h5"] == {"nmse": None, "psnr": None, "ssim": None}
    assert written["per_volume"]["ones.h5"]["ssim"] == 1.0 and written["mean"]["nmse"] is None
    note = written["non_finite"]
    assert note["values"]["/per_volume/zero.h5/nmse"] == "inf" and note["values"]["/std/ssim"] == "nan"
    assert note["values"]["/per_volume/ones.h5/psnr"] == "inf"   # a prediction equal to its target
    assert "written as null" in note["note"] and "all-zero target" in note["note"]
    restored = read_finite_json(out)
    assert restored["per_volume"]["zero.h5"]["nmse"] == np.inf and np.isnan(restored["std"]["ssim"])
    assert "non_finite" not in restored


class _WantsRGB(torch.nn.Module):
    """A detector that refuses anything but 3 channels (as the StyleGAN2 Inception file does)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError("wants 3 channels in [0, 255]")
        return x.flatten(1)


def test_a_feature_extractor_that_raises_is_one_line(tmp_path, monkeypatch):
    import rsd_sci.metrics.distribution as distribution

    monkeypatch.setattr(distribution, "patch_sliced_wasserstein",   # fewer patches: a quicker test
                        functools.partial(distribution.patch_sliced_wasserstein, n_patches=256, n_projections=16))
    images = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    np.save(tmp_path / "a.npy", images)
    np.save(tmp_path / "b.npy", images[::-1].copy())
    det = tmp_path / "DET.pt"
    torch.jit.script(_WantsRGB()).save(str(det))
    r = cli("evaluate", "--samples", tmp_path / "a.npy", "--reference", tmp_path / "b.npy", "--features", det,
            "--device", "cpu")
    _one_line_refusal(r, f"{det}: the extractor fails on (B, 1, H, W) images (builtins.ValueError: wants 3 "
                         "channels in [0, 255])")
