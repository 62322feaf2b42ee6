"""k-space masks: equality with fastMRI's mask functions, variable-density masks, further masks, spec."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rsd_sci.physics.masks import (
    LineMask,
    Mask2D,
    MaskSpec,
    calibration_box,
    check_mask_fits,
    fastmri_line_mask,
    further_drop_count,
    further_line_mask_torch,
    seed_from_name,
    variable_density_mask,
)


def _fastmri_subsample():
    """fastmri/data/subsample.py loaded on its own (the package's data/__init__ needs pandas)."""
    spec = importlib.util.find_spec("fastmri")
    if spec is None or spec.origin is None:  # the test set-up installs it: a missing reference is a failure
        raise ImportError("the fastmri test reference is missing: pip install --no-deps fastmri==0.3.0")
    path = Path(spec.origin).parent / "data" / "subsample.py"
    module_spec = importlib.util.spec_from_file_location("_fastmri_subsample", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


NAMES = ["file1000001.h5", "/data/knee/file1001458.h5", "file_brain_AXT2_200_2000019.h5"]
SEEDS = [0, 1, 42, 2**31 - 1] + [seed_from_name(n) for n in NAMES]
WIDTHS = [368, 372, 320, 640, 333, 36]
SETTINGS = [([0.08], [4]), ([0.04], [8]), ([0.08, 0.04], [4, 8])]


@pytest.mark.parametrize("kind", ["random", "equispaced", "equispaced_fraction"])
def test_line_masks_equal_fastmri(kind):
    fm = _fastmri_subsample()
    cls = {"random": fm.RandomMaskFunc, "equispaced": getattr(fm, "EquiSpacedMaskFunc", None)
           or fm.EquispacedMaskFunc, "equispaced_fraction": fm.EquispacedMaskFractionFunc}[kind]
    for width in WIDTHS:
        for fractions, accels in SETTINGS:
            for seed in SEEDS:
                ref, n_low = cls(fractions, accels, seed=123)((1, 640, width, 2), seed=seed)
                ref = ref.numpy().reshape(-1) > 0
                ours = fastmri_line_mask(kind, width, fractions, accels, seed)
                assert np.array_equal(ours.mask, ref), (kind, width, fractions, seed)
                assert ours.center.sum() == n_low and np.all(ours.mask[ours.center])
                assert ours.acceleration == pytest.approx(width / ref.sum())


def test_seed_from_name_is_fastmri_rule():
    assert seed_from_name("/some/dir/ab.h5") == (97, 98, 46, 104, 53)
    with pytest.raises(ValueError):
        seed_from_name("")


def test_line_mask_centre_rule_by_hand():
    """n_low = round(W·f) lines starting at (W - n_low + 1) // 2 (368 · 0.08 = 29.44 -> 29 from 170)."""
    m = fastmri_line_mask("random", 368, [0.08], [4], 0)
    assert np.array_equal(np.flatnonzero(m.center), np.arange(170, 199))


def test_equispaced_and_random_rules_by_hand():
    """Without the fastmri package: equispaced outer lines are every R-th line from an offset < R;
    random outer lines have probability (W/R - n_low)/(W - n_low), so about W/R lines on average."""
    for seed in range(20):
        m = fastmri_line_mask("equispaced", 320, [0.08], [4], seed)
        outer = np.flatnonzero(m.mask & ~m.center)
        assert outer[0] < 4 and np.all((outer - outer[0]) % 4 == 0)
        assert set(range(outer[0], 320, 4)) - set(np.flatnonzero(m.mask)) == set()
    counts = [fastmri_line_mask("random", 320, [0.08], [4], s).mask.sum() for s in range(200)]
    assert np.mean(counts) == pytest.approx(80, rel=0.02)


@pytest.mark.parametrize("kind", ["gaussian", "poisson"])
@pytest.mark.parametrize("shape,accel", [((96, 80), 4.0), ((128, 128), 8.0), ((64, 64), 2.5)])
def test_variable_density_acceleration_and_calibration(kind, shape, accel):
    calib = (12, 10)
    mask = variable_density_mask(kind, shape, accel, calib=calib, seed=3)
    assert mask.shape == shape and mask.dtype == bool
    assert shape[0] * shape[1] / mask.sum() == pytest.approx(accel, rel=0.05)
    box = calibration_box(shape, calib)
    assert box.sum() == calib[0] * calib[1] and mask[box].all()
    assert np.array_equal(mask, variable_density_mask(kind, shape, accel, calib=calib, seed=3))


def test_gaussian_density_decreases_outward():
    """Averaged over seeds, the sampling density falls with the k-space radius."""
    masks = np.stack([variable_density_mask("gaussian", (64, 64), 4.0, (8, 8), seed=s) for s in range(20)])
    density = masks.mean(0)
    assert density[32, 32 - 10] > density[32, 32 - 20] > density[32, 0]


def test_further_line_mask_published_example():
    """W = 320, 80 lines (R = 4): thinned to R + 1 = 5, i.e. 64 lines, the centre kept, M̂ ⊂ M."""
    rng = np.random.default_rng(0)
    mask = np.zeros(320, dtype=bool)
    center = np.zeros(320, dtype=bool)
    center[147:173] = True
    mask[center] = True
    outer = rng.choice(np.flatnonzero(~center), size=80 - 26, replace=False)
    mask[outer] = True
    assert further_drop_count(80, 320) == 16
    m, c = torch.from_numpy(mask)[None].expand(400, -1), torch.from_numpy(center)[None].expand(400, -1)
    kept = further_line_mask_torch(m, c, further_drop_count(80, 320), torch.Generator().manual_seed(0)).numpy()
    for k in kept:
        assert k.sum() == 64 and np.all(k <= mask) and np.all(k[center])
    # uniform choice: each of the 54 non-centre sampled lines is dropped with probability 16/54
    rate = np.mean([mask & ~k for k in kept], axis=0)[mask & ~center]
    assert np.allclose(rate, 16 / 54, atol=0.1)
    assert further_drop_count(80, 320, acceleration=8.0) == 40


def test_further_points_mask():
    m = MaskSpec("gaussian", 4.0).make((64, 64), seed=1)
    assert isinstance(m, Mask2D)
    r = 64 * 64 / m.mask.sum()
    flat, center = torch.from_numpy(m.mask).reshape(1, -1), torch.from_numpy(m.center).reshape(1, -1)
    drop = further_drop_count(int(m.mask.sum()), 64 * 64)
    sub = further_line_mask_torch(flat, center, drop, torch.Generator().manual_seed(0)).reshape(64, 64).numpy()
    assert sub.sum() == round(64 * 64 / (r + 1))
    assert np.all(sub <= m.mask) and np.all(sub[m.center])


def test_further_line_mask_torch_uniform_subsets():
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(4, 40, dtype=torch.bool)
    center = torch.zeros(4, 40, dtype=torch.bool)
    center[:, 18:22] = True
    mask[:, ::3] = True
    mask |= center
    drop = torch.tensor([0, 3, 5, 100])
    counts = torch.zeros(40)
    for _ in range(400):
        out = further_line_mask_torch(mask, center, drop, generator=g)
        assert torch.all(out <= mask) and torch.all(out[center])
        n_cand = (mask & ~center).sum(1)
        assert torch.equal((mask & ~out).sum(1), torch.minimum(drop, n_cand))
        counts += (mask & ~out)[1].float()
    cand = (mask & ~center)[1]
    rate = counts[cand] / 400  # uniform: each of the 14 candidates dropped with probability 3/14
    assert torch.allclose(rate, torch.full_like(rate, 3 / 14), atol=0.08)
    assert torch.equal(further_line_mask_torch(mask, center, 2, generator=g).sum(1), mask.sum(1) - 2)


def test_mask_spec_roundtrip_make_and_validation():
    spec = MaskSpec("equispaced_fraction", 8, center_fraction=0.04)
    assert MaskSpec.from_dict(spec.to_dict()) == spec
    m = spec.make((640, 368), seed_from_name("file1000001.h5"))
    assert isinstance(m, LineMask) and m.mask.shape == (368,)
    ref = fastmri_line_mask("equispaced_fraction", 368, [0.04], [8], seed_from_name("file1000001.h5"))
    assert np.array_equal(m.mask, ref.mask)
    p = MaskSpec("poisson", 4.0).make((64, 64), seed=seed_from_name("a.nii.gz"))
    assert isinstance(p, Mask2D) and p.mask[p.center].all() and p.center.sum() == 5 * 5
    for bad in (dict(kind="random", acceleration=0.5), dict(kind="random", acceleration=4, center_fraction=0),
                dict(kind="random", acceleration=4, center_fraction=1.2), dict(kind="spiral", acceleration=4),
                dict(kind="random", acceleration=16, center_fraction=0.08),
                dict(kind="equispaced", acceleration=4.5)):
        with pytest.raises(ValueError):
            MaskSpec(**bad)
    with pytest.raises(ValueError, match="unknown"):
        MaskSpec.from_dict(dict(kind="random", acceleration=4, extra=1))


def test_check_mask_fits():
    m = MaskSpec("random", 4).make((10, 320), seed=0)
    check_mask_fits(m, 320)
    check_mask_fits(m.mask, 320)
    with pytest.raises(ValueError, match="320"):
        check_mask_fits(m, 368)
    with pytest.raises(ValueError):
        check_mask_fits(np.zeros(320, dtype=bool), 320)
    with pytest.raises(ValueError, match="rows"):
        check_mask_fits(np.ones((8, 10), dtype=bool), 10, height=9)
