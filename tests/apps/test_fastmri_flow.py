"""The flow a fastMRI user follows, end to end on small fastMRI-schema files, in-process:

    rsd-sci data make --source fastmri --input DIR --out SET
    rsd-sci train --data SET --stage all ...
    rsd-sci reconstruct --model RUN --input DIR --out RECON      (and a baseline, no model)
    rsd-sci evaluate --targets DIR --predictions RECON --json J  (against the files' reconstruction_rss)
"""

import json
import math

import h5py
import numpy as np
import pytest

from tests.support.cli_runner import ok
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file

pytestmark = pytest.mark.usefixtures("one_thread")
NAMES = [f"file_brain_{v:03d}.h5" for v in range(3)]


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    """3 volumes of 2 slices, 4 coils, x2 read-out oversampling (64 -> 32 rows), reconstruction size
    32 x 24 (cropped in both directions), with reconstruction_rss; a set, then a tiny teacher + generator."""
    root = tmp_path_factory.mktemp("flow")
    src = root / "fastmri"
    src.mkdir()
    for v, name in enumerate(NAMES):
        write_fastmri_file(src / name, make_fastmri_kspace(2, 4, 64, 32, seed=v), recon_size=(32, 24))
    mask = ["--accel", 4, "--center-fraction", 0.16]
    ok("data", "make", "--source", "fastmri", "--input", src, "--out", root / "set", *mask)
    ok("train", "--data", root / "set", "--stage", "all", "--steps", 2, "--distill-steps", 2, "--preset", "tiny",
       "--batch", 2, "--device", "cpu", "--no-eval", "--out", root / "run", *mask)
    return root


def evaluate(flow, recon, name):
    out = flow / f"{name}.json"
    ok("evaluate", "--targets", flow / "fastmri", "--predictions", recon, "--json", out)
    result = json.loads(out.read_text())
    assert sorted(result["per_volume"]) == NAMES
    for metrics in [*result["per_volume"].values(), result["mean"]]:
        assert all(math.isfinite(metrics[k]) for k in ("nmse", "psnr", "ssim"))
    return result


@pytest.mark.parametrize("method,extra", [("cg-sense", ["--steps", 10, "--accel", 4, "--center-fraction", 0.16]),
                                          ("generator", ["--model", "RUN", "--steps", 3])])  # the model's mask
def test_reconstruct_and_evaluate(flow, method, extra):
    from rsd_sci.data.fastmri import read_reconstruction

    recon = flow / f"recon-{method}"
    extra = [flow / "run" if a == "RUN" else a for a in extra]
    ok("reconstruct", "--input", flow / "fastmri", "--out", recon, "--method", method, "--device", "cpu", *extra)
    assert read_reconstruction(recon / NAMES[0]).shape == (2, 32, 24)  # cropped to the reconstruction size
    result = evaluate(flow, recon, method)
    if method == "cg-sense":
        assert result["mean"]["nmse"] < 0.3  # in the files' units: the gain matches reconstruction_rss


def test_report_on_a_fastmri_run_crops_to_the_reconstruction_size(flow):
    """`rsd-sci report` evaluates the run on its held-out slices: targets are at the files' reconstruction
    size (32 × 24), reconstructions at the k-space image size (32 × 32), cropped like fastMRI does."""
    run = flow / "run"
    ok("report", run, "--slices", 2, "--adps-steps", 2, "--generator-steps", 2, "--n-samples", 2, "--device", "cpu")
    with h5py.File(run / "eval" / "reconstructions.h5") as f:
        assert f["targets"].shape == (2, 32, 24) and f["cg-sense/mean"].shape == (2, 32, 24)
        assert f["adps/std"].shape == (2, 32, 24)
    assert np.load(run / "samples" / "generator.npy").shape[1:] == (32, 24)
    assert set(json.loads((run / "eval" / "metrics.json").read_text())["distribution"]) == {"reference", "data", "teacher", "generator"}
    assert (run / "figures" / "reconstructions.png").is_file()
