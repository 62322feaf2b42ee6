"""The posterior-evaluation scripts of examples/ run at a smoke size on the tiny run of the `api_folder`
fixture (in-process: each script's main(argv))."""

import json
import runpy
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_thread")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *args):
    """The script's main() called with `args` (str()-ed), as `python examples/NAME ARGS` runs it."""
    main = runpy.run_path(str(EXAMPLES / name), run_name="example")["main"]
    return main([str(a) for a in args])


def test_reconstruct_fastmri_writes_and_scores_every_file(api_folder, tmp_path, capsys):
    out = tmp_path / "recon"
    summary = run_example("reconstruct_fastmri.py", "--model", api_folder / "runs" / "mri-r4", "--input",
                          api_folder / "scans", "--out", out, "--method", "adps", "--n-samples", 2, "--steps", 2)
    with h5py.File(out / "file_brain_001.h5") as f:   # the file's 2 slices at its reconstruction size
        assert f["reconstruction"].shape == f["std"].shape == (2, 32, 32)
    assert json.loads((out / "metrics.json").read_text()) == summary
    assert set(summary["per_volume"]) == {"file_brain_001.h5"}
    assert all(np.isfinite(v) for v in summary["mean"].values())
    assert "mean ± std: nmse" in capsys.readouterr().out


def test_posterior_uncertainty_draws_a_figure(api_folder, tmp_path):
    figure = tmp_path / "slice.png"
    result = run_example("posterior_uncertainty.py", "--model", api_folder / "runs" / "mri-r4", "--index", 1,
                         "--n-samples", 2, "--steps", 3, "--out", figure)
    assert figure.stat().st_size > 0
    assert set(result) == {"mean", "zero-filled", "error_std_correlation", "within_2_std"}
    assert 0 <= result["within_2_std"] <= 1 and np.isfinite(result["mean"]["psnr"])


def test_compare_samples_scores_each_set_against_the_reference(api_folder, tmp_path):
    extractor = tmp_path / "features.pt"
    torch.jit.script(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten())).save(str(extractor))
    results = run_example("compare_samples.py", "--model", api_folder / "runs" / "mri-r4", "-n", 4,
                          "--teacher-steps", 2, "--features", extractor)
    assert set(results) == {"reference", "data", "generator", "teacher"}
    for name in ("data", "generator", "teacher"):
        assert results[name]["n"] == 4 and {"fid", "kid", "patch_sliced_wasserstein"} <= set(results[name])
