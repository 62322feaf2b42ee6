"""`rsd-sci evaluate`: fastMRI-style metrics of prediction folders, distances between image sets, errors."""

import functools
import json

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from cli.app import app
from rsd_sci.metrics.features import frechet_distance
from rsd_sci.metrics.image import volume_metrics

runner = CliRunner()


def _volume(seed, slices=3, h=24, w=20):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    return (np.exp(-(xx ** 2 + yy ** 2) / 0.3)[None] * rng.uniform(0.5, 2, (slices, 1, 1))).astype(np.float32)


def _write(path, **datasets):
    with h5py.File(path, "w") as f:
        for key, value in datasets.items():
            f.create_dataset(key, data=value)


@pytest.fixture
def folders(tmp_path):
    """Three targets (one with only reconstruction_esc) and predictions 4 rows / 3 columns larger."""
    targets, predictions = tmp_path / "targets", tmp_path / "predictions"
    targets.mkdir(), predictions.mkdir()
    pairs = {}
    for i, name in enumerate(["file1.h5", "file2.h5", "file3.h5"]):
        target = _volume(i)
        noisy = target + 0.05 * np.random.default_rng(10 + i).standard_normal(target.shape).astype(np.float32)
        prediction = np.pad(noisy, ((0, 0), (2, 2), (1, 2)))
        _write(targets / name, **{"reconstruction_esc" if i == 2 else "reconstruction_rss": target})
        _write(predictions / name, reconstruction=prediction)
        pairs[name] = (target, prediction)
    return targets, predictions, pairs


def _evaluate(*args):
    return runner.invoke(app, ["evaluate", *map(str, args)])


def test_paired_json_equals_volume_metrics(folders, tmp_path):
    targets, predictions, pairs = folders
    out = tmp_path / "metrics.json"
    r = _evaluate("--targets", targets, "--predictions", predictions, "--json", out)
    assert r.exit_code == 0, r.output
    assert "mean ± std" in r.output and "file3.h5" in r.output
    result = json.loads(out.read_text())
    expected = {name: volume_metrics(t, p) for name, (t, p) in pairs.items()}
    for name in pairs:
        assert result["per_volume"][name] == pytest.approx(expected[name], rel=1e-12)
    for metric in ("nmse", "psnr", "ssim"):
        values = [expected[name][metric] for name in pairs]
        assert result["mean"][metric] == pytest.approx(np.mean(values))
        assert result["std"][metric] == pytest.approx(np.std(values))


def _bad_folders(case, targets, predictions):
    """Break the fixture's folders in one way; return the expected words of the error."""
    if case == "empty":
        for p in predictions.iterdir():
            p.unlink()
        return "no .h5 files"
    if case == "unmatched":
        (predictions / "file2.h5").rename(predictions / "other.h5")
        return "file2.h5"
    if case == "no_reconstruction":
        _write(predictions / "file1.h5", recon=_volume(0))
        return "file1.h5: no 'reconstruction' dataset"
    if case == "no_target":
        _write(targets / "file2.h5", kspace=np.zeros((3, 4, 4), np.complex64))
        return "no 'reconstruction_rss' or 'reconstruction_esc' dataset"
    _write(predictions / "file3.h5", reconstruction=_volume(2, h=20))  # smaller than the (24, 20) target
    return "does not fit target"


@pytest.mark.parametrize("case", ["empty", "unmatched", "no_reconstruction", "no_target", "smaller"])
def test_paired_bad_input(folders, tmp_path, case):
    targets, predictions, _ = folders
    words = _bad_folders(case, targets, predictions)
    out = tmp_path / "metrics.json"
    r = _evaluate("--targets", targets, "--predictions", predictions, "--json", out)
    assert r.exit_code == 2, r.output
    assert words in r.output and "Traceback" not in r.output and not out.exists()
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [[], ["--targets", "t"], ["--samples", "a.npy"],
                                  ["--targets", "t", "--predictions", "p", "--samples", "a.npy"]])
def test_exactly_one_mode(args):
    r = _evaluate(*args)
    assert r.exit_code == 2 and "rsd-sci: error:" in r.output


def _image_sets(tmp_path):
    """The same 6 images as .npy (N, H, W) and as a NIfTI volume (H, W, N), and 6 other images."""
    rng = np.random.default_rng(0)
    images = rng.random((6, 32, 32)).astype(np.float32)
    np.save(tmp_path / "a.npy", images)
    nib.save(nib.Nifti1Image(images.transpose(1, 2, 0), np.eye(4)), tmp_path / "a.nii.gz")
    _write(tmp_path / "b.h5", samples=(2 * rng.random((5, 1, 32, 32))).astype(np.float32))
    return tmp_path / "a.npy", tmp_path / "a.nii.gz", tmp_path / "b.h5"


def test_samples_mode_distances(tmp_path):
    a_npy, a_nii, b_h5 = _image_sets(tmp_path)
    out = tmp_path / "d.json"
    r = _evaluate("--samples", a_npy, "--reference", a_nii, "--json", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "FID/KID: not computed (pass --features PATH" in r.output
    same = json.loads(out.read_text())
    assert set(same) == {"written_by", "patch_sliced_wasserstein", "power_spectrum_distance", "n_samples",
                         "n_reference", "spread_samples", "spread_reference"}
    assert same["patch_sliced_wasserstein"]["mean"] == 0 and same["spread_samples"] == same["spread_reference"] > 0
    assert same["power_spectrum_distance"] == pytest.approx(0.0, abs=1e-12)
    assert len(same["patch_sliced_wasserstein"]["scales"]) == 3 and same["n_reference"] == 6
    r = _evaluate("--samples", b_h5, "--reference", a_nii, "--json", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    other = json.loads(out.read_text())
    assert other["patch_sliced_wasserstein"]["mean"] > 0 and other["power_spectrum_distance"] > 0
    assert other["n_samples"] == 5 and other["spread_samples"] != other["spread_reference"]


class _PoolLinear(torch.nn.Module):
    """Features: average pools of 4×4 blocks (N, 64) of (N, 1, 32, 32), through a fixed linear map to 8."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(64, 8)
        with torch.no_grad():
            self.linear.weight.copy_(torch.linspace(-1, 1, 512).reshape(8, 64))
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1))


@pytest.fixture
def fewer_patches(monkeypatch):
    """The patch distance with fewer patches and directions (its own tests are elsewhere): a faster test."""
    import rsd_sci.metrics.distribution as distribution

    monkeypatch.setattr(distribution, "patch_sliced_wasserstein",
                        functools.partial(distribution.patch_sliced_wasserstein, n_patches=256, n_projections=16))


def test_features_give_fid_and_kid(tmp_path, fewer_patches):
    a_npy, a_nii, b_h5 = _image_sets(tmp_path)
    extractor = tmp_path / "features.pt"
    torch.jit.script(_PoolLinear()).save(str(extractor))
    out = tmp_path / "d.json"
    r = _evaluate("--samples", a_npy, "--reference", a_nii, "--features", extractor, "--json", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    same = json.loads(out.read_text())
    assert same["fid"] == pytest.approx(0.0, abs=1e-6) and same["feature_dim"] == 8
    r = _evaluate("--samples", b_h5, "--reference", a_npy, "--features", extractor, "--json", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    other = json.loads(out.read_text())
    assert np.isfinite(other["fid"]) and other["fid"] > 0 and np.isfinite(other["kid"])
    with torch.no_grad():  # the FID of the features computed here
        feats = [_PoolLinear()(torch.from_numpy(x.reshape(-1, 1, 32, 32))).double().numpy()
                 for x in (h5py.File(b_h5)["samples"][()], np.load(a_npy))]
    assert other["fid"] == pytest.approx(frechet_distance(*feats), rel=1e-4)


def test_features_not_torchscript(tmp_path):
    a_npy, a_nii, _ = _image_sets(tmp_path)
    bad = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(3)}, bad)
    out = tmp_path / "d.json"
    r = _evaluate("--samples", a_npy, "--reference", a_nii, "--features", bad, "--json", out, "--device", "cpu")
    assert r.exit_code == 2 and "weights.pt: not a TorchScript file" in r.output and not out.exists()
    assert len(r.stderr.strip().splitlines()) == 1


def test_predictions_with_nan_are_refused_naming_the_file(tmp_path):
    for folder, value in (("t", 1.0), ("p", float("nan"))):
        (tmp_path / folder).mkdir()
        with h5py.File(tmp_path / folder / "v.h5", "w") as f:
            data = np.full((2, 8, 8), 1.0, np.float32)
            data[1, 3, 3] = value
            f["reconstruction_rss" if folder == "t" else "reconstruction"] = data
    r = runner.invoke(app, ["evaluate", "--targets", str(tmp_path / "t"), "--predictions", str(tmp_path / "p"),
                            "--json", str(tmp_path / "m.json")])
    assert r.exit_code == 2 and "v.h5" in r.output and "NaN or Inf values (slice(s) 1)" in r.output, r.output
    assert not (tmp_path / "m.json").exists()
