"""FID/KID through the StyleGAN2-ADA Inception detector's interface: told from the module, fed the
published protocol (magnitudes in the sets' own units, a centred square, 3 equal channels, float32,
return_features=True); a stand-in of the interface, no download."""

import json

import numpy as np
import pytest
import torch

from tests.support.cli_runner import cli
from rsd_sci.errors import InputError
from rsd_sci.metrics.extractors import inception_input, interface_of
from rsd_sci.metrics.features import feature_distances, frechet_distance

FEATURES = 16   # the stand-in's feature width (the real detector's is 2048)


class _InceptionStandIn(torch.nn.Module):
    """The StyleGAN2-ADA detector's interface: forward(x, return_features) on (B, 3, H, W) in 0-255.
    Refuses anything else (1 channel, values outside 0-255, channels that differ, logits asked for); its
    features are 4×4 average pools of the first channel (16 values)."""

    def forward(self, x: torch.Tensor, return_features: bool = False, use_fp16: bool = False) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError("wants (B, 3, H, W)")
        if bool((x < 0).any()) or bool((x > 255).any()):
            raise ValueError("wants values in 0-255")
        if not bool((x[:, 1] == x[:, 0]).all()) or not bool((x[:, 2] == x[:, 0]).all()):
            raise ValueError("wants a grey image repeated to 3 channels")
        if not return_features:
            raise ValueError("called for logits, not features")
        return torch.nn.functional.adaptive_avg_pool2d(x[:, :1].float(), 4).flatten(1)


class _TwoInputs(torch.nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x + y).flatten(1)


class _NoInput(torch.nn.Module):
    def forward(self) -> torch.Tensor:
        return torch.zeros(1)


def _save(module, path):
    torch.jit.script(module).save(str(path))
    return path


def _stand_in_features(images: np.ndarray) -> np.ndarray:
    """The stand-in's features computed here from the published rule: |Re + i Im| as it is, the (32, 24)
    images zero-padded to 32 × 32 (4 columns each side)."""
    v = np.abs(images[:, 0].astype(np.float64) + 1j * images[:, 1])
    u = np.pad(v, ((0, 0), (0, 0), (4, 4)))
    return u.reshape(len(u), 4, 8, 4, 8).mean((2, 4)).reshape(len(u), -1)


def _sets(tmp_path):
    """Two sets of complex images as (Re, Im) channels (N, 2, 32, 24): blobs of random widths and scales."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[-1:1:32j, -1:1:24j]

    def blobs(n, width):
        w = rng.uniform(*width, (n, 1, 1))
        mag = np.exp(-(xx ** 2 + yy ** 2) / w) * rng.uniform(0.5, 3, (n, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1))
        return np.stack([mag * np.cos(phase), mag * np.sin(phase)], 1).astype(np.float32)

    a, b = blobs(12, (0.1, 0.3)), blobs(10, (0.4, 0.9))
    for name, x in (("a", a), ("b", b)):
        np.save(tmp_path / f"{name}.npy", x)
    return a, b


def test_the_interface_is_told_from_the_module(tmp_path):
    inception = torch.jit.load(str(_save(_InceptionStandIn(), tmp_path / "det.pt")))
    one_channel = torch.jit.load(str(_save(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten()),
                                           tmp_path / "pool.pt")))
    assert interface_of(inception) == "inception" and interface_of(one_channel) == "magnitude"
    assert interface_of(_InceptionStandIn()) == "inception"     # a Python module: its signature
    for module in (_TwoInputs(), torch.jit.script(_TwoInputs()), torch.jit.script(_NoInput())):
        with pytest.raises(ValueError, match="neither"):
            interface_of(module)


def test_inception_input_is_the_magnitude_as_it_is_in_a_centred_square_of_3_equal_channels():
    images = np.zeros((2, 2, 3, 5), np.float32)
    images[0, 0] = np.arange(15).reshape(3, 5)           # real
    images[1, 1] = -np.arange(15).reshape(3, 5)          # imaginary: the same magnitude
    x = inception_input(images)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 5, 5)
    assert torch.equal(x[0], x[1]) and torch.equal(x[:, 0], x[:, 2])
    assert x[0, 0, 0].tolist() == [0] * 5 and x[0, 0, 4].tolist() == [0] * 5   # a zero row above and below
    assert x[0, 0, 1:4].flatten().tolist() == list(range(15))                  # not rescaled


def test_cli_fid_through_the_stand_in(tmp_path):
    a, b = _sets(tmp_path)
    det = _save(_InceptionStandIn(), tmp_path / "inception-2015-12-05.pt")
    out = tmp_path / "d.json"
    r = cli("evaluate", "--samples", tmp_path / "a.npy", "--reference", tmp_path / "a.npy", "--features", det,
            "--json", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert "StyleGAN2-ADA Inception detector" in r.output
    same = json.loads(out.read_text())
    assert same["fid"] == pytest.approx(0.0, abs=1e-9) and same["feature_dim"] == FEATURES
    assert same["feature_interface"] == "inception"
    r = cli("evaluate", "--samples", tmp_path / "b.npy", "--reference", tmp_path / "a.npy", "--features", det,
            "--json", out, "--device", "cpu")
    assert r.exit_code == 0, r.output
    other = json.loads(out.read_text())
    assert other["fid"] > 0.01
    assert other["fid"] == pytest.approx(frechet_distance(_stand_in_features(b), _stand_in_features(a)), rel=1e-6)


def test_units_matter_as_published(tmp_path):
    a, _ = _sets(tmp_path)
    det = torch.jit.script(_InceptionStandIn())
    assert feature_distances(None, det, a, a, "cpu")["fid"] == pytest.approx(0.0, abs=1e-9)
    assert feature_distances(None, det, 2 * a, a, "cpu")["fid"] > 0.01


def test_a_module_with_neither_interface_is_one_line_naming_the_file(tmp_path):
    _sets(tmp_path)
    det = _save(_TwoInputs(), tmp_path / "two.pt")
    r = cli("evaluate", "--samples", tmp_path / "a.npy", "--reference", tmp_path / "b.npy", "--features", det,
            "--device", "cpu")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rsd-sci: error: {det}: forward(x, y) is neither"), lines
    with pytest.raises(InputError, match="is neither"):
        feature_distances(None, _TwoInputs(), np.zeros((2, 1, 8, 8)), np.zeros((2, 1, 8, 8)), "cpu")


def test_a_detector_that_refuses_its_input_names_the_3_channel_input(tmp_path):
    class _WantsUint8(torch.nn.Module):
        def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
            if x.dtype != torch.uint8:
                raise ValueError("wants uint8")
            return x.flatten(1)

    a, _ = _sets(tmp_path)
    with pytest.raises(InputError, match=r"det.pt: the extractor fails on \(B, 3, S, S\) magnitude images "
                                         r"\(.*wants uint8\)"):
        feature_distances(tmp_path / "det.pt", torch.jit.script(_WantsUint8()), a, a, "cpu")
