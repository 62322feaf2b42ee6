"""The main job end to end on small phantoms: `train` (stage all) ends with the evaluation on the held-out
test set and RUN/report.md; the metrics checked against an independent computation; bad input."""

from __future__ import annotations

import json
import re

import h5py
import numpy as np
import pytest
from matplotlib.image import imread
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from tests.support.cli_runner import cli, ok
from tests.support.fastmri_schema import ifft2c

TINY = ["--size", "32", "--n-train", "16", "--n-test", "6", "--preset", "tiny", "--batch", "4",
        "--center-fraction", "0.2"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The README's main job, small: teacher, distillation, evaluation of 2 held-out slices (A-DPS and the
    generator prior shortened), report."""
    out = tmp_path_factory.mktemp("runs") / "mri"
    r = ok("train", "--modality", "mri", "--out", out, "--steps", 3, "--distill-steps", 2, "--eval-slices", 2,
           "--adps-steps", 12, "--generator-steps", 7, *TINY)
    return out, r.output


def test_train_ends_with_the_report_and_its_headline(run):
    out, output = run
    assert f"report: {out / 'report.md'}" in output
    assert "patch sliced Wasserstein to clean held-out images" in output and "NMSE on 2 held-out slices" in output
    figures = re.findall(r"\]\((figures/[^)]+\.png)\)", (out / "report.md").read_text())
    assert set(figures) == {f"figures/{n}.png" for n in ("samples", "distances", "metrics", "reconstructions",
                                                         "training")}
    for name in figures:
        assert imread(out / name).ndim == 3
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert list(metrics["reconstruction"]) == ["zero-filled", "cg-sense", "l1-wavelet", "adps", "generator"]
    assert list(metrics["distribution"]) == ["reference", "data", "teacher", "generator"]
    for name in ("reference", "teacher", "generator"):   # the spread: numpy's std across the saved images
        images = np.load(out / "samples" / f"{name}.npy").astype(np.float64)
        assert metrics["distribution"][name]["spread"] == pytest.approx(images.std(0, ddof=1).mean(), rel=1e-6)
    assert "spread" in output and "| spread |" in (out / "report.md").read_text()
    assert metrics["models"]["generator"]["selected_step"] == 2
    assert (metrics["settings"]["adps_steps"], metrics["settings"]["generator_steps"]) == (12, 7)
    assert metrics["reconstruction"]["adps"]["steps"] == 12 and "12 noise levels each" in (out / "report.md").read_text()
    with h5py.File(out / "eval" / "reconstructions.h5") as f:
        assert f["adps/std"].shape == (2, 32, 32) and "std" not in f["generator"]
        assert np.isfinite(f["generator/mean"][()]).all() and f["adps/std"][()].max() > 0
    for name in ("reference", "data", "teacher", "generator"):
        images = np.load(out / "samples" / f"{name}.npy")
        assert images.shape == (6, 32, 32) and np.isfinite(images).all()


def test_metrics_match_an_independent_computation(run):
    """Zero-filled = |ifft2c(y)| (numpy, single coil) and its metrics are scikit-image's PSNR and SSIM with
    the target's maximum as the data range (each phantom slice its own volume)."""
    out, _ = run
    with h5py.File(out / "data" / "test.h5") as f:
        y, targets = f["measurements"][:2, 0], f["targets"][:2, 0].astype(np.float64)
    zero_filled = np.abs(ifft2c(y))
    with h5py.File(out / "eval" / "reconstructions.h5") as f:
        np.testing.assert_allclose(f["zero-filled/mean"][()], zero_filled, atol=1e-5)
        np.testing.assert_allclose(f["targets"][()], targets, atol=1e-6)
    per_volume = json.loads((out / "eval" / "metrics.json").read_text())["reconstruction"]["zero-filled"]["per_volume"]
    assert len(per_volume) == 2
    for gt, pred, m in zip(targets, zero_filled.astype(np.float64), per_volume.values()):
        assert m["nmse"] == pytest.approx(np.sum((gt - pred) ** 2) / np.sum(gt ** 2), rel=1e-4)
        assert m["psnr"] == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=gt.max()), rel=1e-4)
        assert m["ssim"] == pytest.approx(structural_similarity(gt, pred, data_range=gt.max()), rel=1e-4)


def test_distances_equal_those_of_rsd_sci_evaluate(run, tmp_path):
    out, _ = run
    ok("evaluate", "--samples", out / "samples" / "generator.npy", "--reference", out / "samples" / "reference.npy",
       "--json", tmp_path / "d.json")
    direct = json.loads((tmp_path / "d.json").read_text())
    mine = json.loads((out / "eval" / "metrics.json").read_text())["distribution"]["generator"]
    assert mine["patch_sliced_wasserstein"] == pytest.approx(direct["patch_sliced_wasserstein"]["mean"], rel=1e-9)
    assert mine["power_spectrum_distance"] == pytest.approx(direct["power_spectrum_distance"], rel=1e-9)


def test_report_rewrites_from_the_saved_evaluation(run):
    out, _ = run
    (out / "report.md").unlink()
    r = ok("report", out)   # metrics.json exists: no new evaluation, the same headline
    assert (out / "report.md").is_file() and "NMSE on 2 held-out slices" in r.output


@pytest.mark.parametrize("case", ["missing", "not-a-run", "slices"])
def test_report_bad_input(case, tmp_path):
    args = {"missing": [tmp_path / "nope"], "not-a-run": [tmp_path],
            "slices": [tmp_path, "--slices", 0]}[case]
    r = cli("report", *args)
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output
    assert not (tmp_path / "report.md").exists()
