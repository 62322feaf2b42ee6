"""Image metrics against fastMRI's own functions, scikit-image and hand formulas; FID/KID by hand.

fastMRI's `fastmri/evaluate.py` imports `runstats` and `fastmri.data` (which needs pandas) at the top,
neither installed here, and `fastmri.data.transforms` needs pandas too; when the import fails, the
metric functions (and `center_crop`) are taken from the installed source files themselves: their `def`
statements are parsed (ast) and executed in a namespace holding only what they use.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from rsd_sci.metrics.features import frechet_distance, kernel_inception_distance
from rsd_sci.metrics.image import (
    center_crop,
    nmse,
    psnr,
    ssim,
    summarize,
    volume_metrics,
)


def _defs_from_source(module: str, names: tuple[str, ...], namespace: dict) -> dict:
    """The functions `names` of an installed module's source file, without running its imports."""
    path = Path(importlib.util.find_spec("fastmri").origin).parent / module
    tree = ast.parse(path.read_text())
    keep = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    assert {node.name for node in keep} == set(names)
    exec(compile(ast.Module(body=keep, type_ignores=[]), str(path), "exec"), namespace)
    return {name: namespace[name] for name in names}


try:
    from fastmri.evaluate import nmse as fm_nmse, psnr as fm_psnr, ssim as fm_ssim
except ImportError:  # runstats / pandas missing: load the defs from fastmri/evaluate.py
    _ns = dict(np=np, Optional=Optional, peak_signal_noise_ratio=peak_signal_noise_ratio,
               structural_similarity=structural_similarity)
    fm_nmse, fm_psnr, fm_ssim = _defs_from_source("evaluate.py", ("nmse", "psnr", "ssim"), _ns).values()
try:
    from fastmri.data.transforms import center_crop as fm_center_crop
except ImportError:  # pandas missing: load the def from fastmri/data/transforms.py
    fm_center_crop = _defs_from_source("data/transforms.py", ("center_crop",),
                                       dict(torch=torch, Tuple=Tuple))["center_crop"]


def _phantom(slices=3, h=48, w=40, seed=0):
    """Smooth ellipses (a different brightness per slice) plus Gaussian noise: (target, prediction)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[-1:1:h * 1j, -1:1:w * 1j]
    gt = np.stack([(1 + s) * np.exp(-((xx / 0.6) ** 2 + (yy / 0.8) ** 2) ** 2) +
                   0.5 * np.exp(-(((xx - 0.2) / 0.2) ** 2 + ((yy + 0.1) / 0.3) ** 2)) for s in range(slices)])
    return gt, gt + 0.05 * rng.standard_normal(gt.shape)


def _random(slices=4, h=33, w=28, seed=1):
    rng = np.random.default_rng(seed)
    gt = rng.random((slices, h, w))
    return gt, gt + 0.2 * rng.standard_normal(gt.shape)


def _ssim_by_hand(a, b, data_range):
    """The module docstring's SSIM_2D: 7×7 uniform window, sample covariances, 3-pixel border left out."""
    c1, c2, n = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2, 49
    mu_a, mu_b = uniform_filter(a, 7), uniform_filter(b, 7)
    var_a = n / (n - 1) * (uniform_filter(a * a, 7) - mu_a ** 2)
    var_b = n / (n - 1) * (uniform_filter(b * b, 7) - mu_b ** 2)
    cov = n / (n - 1) * (uniform_filter(a * b, 7) - mu_a * mu_b)
    s = (2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s[3:-3, 3:-3].mean()


@pytest.mark.parametrize("make", [_random, _phantom])
@pytest.mark.parametrize("maxval", [None, 3.0])
def test_metrics_equal_fastmri(make, maxval):
    gt, pred = make()
    assert nmse(gt, pred) == pytest.approx(float(fm_nmse(gt, pred)), rel=1e-4)
    assert psnr(gt, pred, maxval) == pytest.approx(float(fm_psnr(gt, pred, maxval)), rel=1e-4)
    assert ssim(gt, pred, maxval) == pytest.approx(float(fm_ssim(gt, pred, maxval)[0]), rel=1e-4)


@pytest.mark.parametrize("make", [_random, _phantom])
def test_metrics_equal_skimage_and_hand_formulas(make):
    gt, pred = make()
    L = gt.max()
    assert nmse(gt, pred) == pytest.approx(((gt - pred) ** 2).sum() / (gt ** 2).sum(), rel=1e-10)
    assert psnr(gt, pred) == pytest.approx(peak_signal_noise_ratio(gt, pred, data_range=L), rel=1e-10)
    assert psnr(gt, pred) == pytest.approx(10 * np.log10(L ** 2 / ((gt - pred) ** 2).mean()), rel=1e-10)
    per_slice = [structural_similarity(g, p, data_range=L) for g, p in zip(gt, pred)]
    assert ssim(gt, pred) == pytest.approx(np.mean(per_slice), rel=1e-10)
    assert ssim(gt, pred) == pytest.approx(np.mean([_ssim_by_hand(g, p, L) for g, p in zip(gt, pred)]), rel=1e-6)
    assert ssim(gt[0], pred[0], L) == pytest.approx(per_slice[0], rel=1e-10)  # a 2-D image is one slice


@pytest.mark.parametrize("size", [(9, 8), (10, 11), (7, 7)])
@pytest.mark.parametrize("crop", [(4, 4), (5, 3), (7, 7)])
def test_center_crop_matches_fastmri(size, crop):
    x = np.arange(2 * size[0] * size[1]).reshape(2, *size)
    np.testing.assert_array_equal(center_crop(x, crop), fm_center_crop(x, crop))


def test_center_crop_by_hand_and_bad_shapes():
    x = np.arange(30).reshape(5, 6)
    np.testing.assert_array_equal(center_crop(x, (2, 3)), x[1:3, 1:4])  # starts (5−2)//2 = 1, (6−3)//2 = 1
    np.testing.assert_array_equal(center_crop(x, (4, 4)), x[0:4, 1:5])  # (5−4)//2 = 0, (6−4)//2 = 1
    for bad in [(6, 6), (0, 3)]:
        with pytest.raises(ValueError, match="centre-crop"):
            center_crop(x, bad)


def test_volume_metrics_use_the_volume_maximum():
    gt, pred = _phantom()  # slice maxima ≈ 1, 2, 3: per-slice data ranges would differ from the volume's
    m = volume_metrics(gt, pred)
    L = gt.max()
    assert m["psnr"] == pytest.approx(psnr(gt, pred, L)) and m["ssim"] == pytest.approx(ssim(gt, pred, L))
    assert m["nmse"] == pytest.approx(nmse(gt, pred))
    per_slice_ssim = np.mean([structural_similarity(g, p, data_range=g.max()) for g, p in zip(gt, pred)])
    per_slice_psnr = np.mean([psnr(g, p) for g, p in zip(gt, pred)])
    assert abs(m["ssim"] - per_slice_ssim) > 1e-3 and abs(m["psnr"] - per_slice_psnr) > 0.1


def test_volume_metrics_crop_the_prediction():
    gt, pred = _random(h=20, w=17)
    big = np.pad(pred, ((0, 0), (3, 4), (1, 2)), constant_values=9.0)  # odd/even margins: starts (7//2, 3//2)
    assert volume_metrics(gt, big) == pytest.approx(volume_metrics(gt, pred))
    cropped = fm_center_crop(big, gt.shape[-2:])
    reference = {"nmse": fm_nmse(gt, cropped), "psnr": fm_psnr(gt, cropped), "ssim": fm_ssim(gt, cropped)[0]}
    assert volume_metrics(gt, big) == pytest.approx({k: float(v) for k, v in reference.items()}, rel=1e-4)


def test_volume_metrics_take_magnitudes():
    gt, pred = _phantom()
    rng = np.random.default_rng(3)
    phase_t, phase_p = np.exp(1j * rng.uniform(0, 6, gt.shape)), np.exp(1j * rng.uniform(0, 6, gt.shape))
    assert volume_metrics(gt * phase_t, pred * phase_p) == pytest.approx(volume_metrics(gt, np.abs(pred)))


def test_volume_metrics_refuse_shapes_that_do_not_fit():
    gt, pred = _random(h=20, w=17)
    with pytest.raises(ValueError, match=r"\(4, 19, 17\).*\(4, 20, 17\)"):
        volume_metrics(gt, pred[:, 1:])
    with pytest.raises(ValueError, match="does not fit"):
        volume_metrics(gt, pred[:3])


def test_summarize_mean_and_population_std():
    per = {"a": {"nmse": 0.1, "psnr": 30.0, "ssim": 0.8}, "b": {"nmse": 0.3, "psnr": 36.0, "ssim": 0.9}}
    s = summarize(per)
    assert s["per_volume"] is per
    assert s["mean"] == pytest.approx({"nmse": 0.2, "psnr": 33.0, "ssim": 0.85})
    assert s["std"] == pytest.approx({"nmse": 0.1, "psnr": 3.0, "ssim": 0.05})


def test_frechet_distance_by_eigenvalues():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((300, 3)) @ np.diag([1.0, 2.0, 0.5])
    g = rng.standard_normal((200, 3)) @ rng.standard_normal((3, 3)) + 1.0
    cf, cg = np.cov(f, rowvar=False), np.cov(g, rowvar=False)
    # tr (Σ_f Σ_g)^{1/2} = Σ sqrt(λ_i) over the (real, non-negative) eigenvalues of Σ_f Σ_g
    root_trace = np.sqrt(np.clip(np.linalg.eigvals(cf @ cg).real, 0, None)).sum()
    expected = ((f.mean(0) - g.mean(0)) ** 2).sum() + np.trace(cf) + np.trace(cg) - 2 * root_trace
    assert frechet_distance(f, g) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9) and frechet_distance(f, f) >= 0


def test_kernel_inception_distance_by_loops():
    rng = np.random.default_rng(1)
    f, g = rng.standard_normal((6, 3)), rng.standard_normal((5, 3)) + 0.5
    k = lambda u, v: (u @ v / 3 + 1) ** 3  # noqa: E731
    ff = sum(k(f[i], f[j]) for i in range(6) for j in range(6) if i != j) / 30
    gg = sum(k(g[i], g[j]) for i in range(5) for j in range(5) if i != j) / 20
    fg = sum(k(a, b) for a in f for b in g) / 30
    assert kernel_inception_distance(f, g) == pytest.approx(ff + gg - 2 * fg, rel=1e-10)
    with pytest.raises(ValueError, match="N, M ≥ 2"):
        kernel_inception_distance(f[:1], g)
