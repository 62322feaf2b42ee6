"""The measurement model: the family factory, keyed further operators, conditioning, R̂·Â, residuals and |M|,
each family's class bound to a batch by `measure`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsd_sci.keyed_random import further_generator
from rsd_sci.measurement import Measurement, baselines_of, family_of
from rsd_sci.measurement.ct import CT
from rsd_sci.measurement.image import DataSpace, PixelMasks
from rsd_sci.measurement.mri import MRI
from rsd_sci.physics.coil_maps import birdcage_maps
from rsd_sci.physics.ct import default_view_drop, ramp_filter, view_mask
from rsd_sci.physics.fourier import fft2c, ifft2c
from rsd_sci.physics.inpaint import bernoulli_mask
from rsd_sci.physics.layout import complex_to_channels
from rsd_sci.physics.masks import MaskSpec, further_drop_count
from rsd_sci.physics.mri import MRIOperator, normalize_maps

MRI_SPEC = {"family": "mri", "shape": [12, 32], "coils": 1, "mask": {"kind": "random", "acceleration": 4}}
CT_SPEC = {"family": "ct", "image_size": 16, "n_angles": 30, "n_views": 10, "view_kind": "sparse"}
PIX_SPEC = {"family": "image", "shape": [8, 8], "corruption": "inpaint", "p": 0.5, "delta": 0.3}


def _crandn(g, *shape):
    return torch.complex(torch.randn(shape, generator=g), torch.randn(shape, generator=g))


def _mri_batch(indices, h=12, w=32, coils=1, two_d=False):
    """Per-sample masks keyed by the index (so a sample's data do not depend on the batch it is in)."""
    spec = MaskSpec("gaussian" if two_d else "random", 4, center_fraction=0.2 if two_d else 0.08)
    made = [spec.make((h, w), seed=int(i)) for i in indices]
    g = torch.Generator().manual_seed(0)
    batch = {"masks": torch.from_numpy(np.stack([m.mask for m in made])),
             "centers": torch.from_numpy(np.stack([m.center for m in made])),
             "index": torch.tensor(indices, dtype=torch.int64)}
    if coils > 1:
        batch["coil_maps"] = torch.from_numpy(birdcage_maps(coils, h, w))[None].expand(len(indices), -1, -1, -1)
    spec_dict = dict(MRI_SPEC, shape=[h, w], coils=coils)
    op = family_of(spec_dict).operator(batch)
    x = _crandn(g, len(indices), 1, h, w)
    batch["y"] = op.A(x)
    return spec_dict, batch, op, x


def _ct_batch(indices):
    masks = torch.stack([torch.from_numpy(np.roll(view_mask(30, 10), int(i) % 3)) for i in indices])
    batch = {"masks": masks, "index": torch.tensor(indices, dtype=torch.int64)}
    op = family_of(CT_SPEC).operator(batch)
    x = torch.randn(len(indices), 1, 16, 16, generator=torch.Generator().manual_seed(1))
    batch["y"] = op.A(x)
    return batch, op, x


def _pixel_batch(indices, size=8):
    masks = torch.cat([bernoulli_mask((1, 1, size, size), 0.5, torch.Generator().manual_seed(int(i)))
                       for i in indices])
    batch = {"masks": masks, "index": torch.tensor(indices, dtype=torch.int64)}
    op = family_of(dict(PIX_SPEC, shape=[size, size])).operator(batch)
    x = torch.randn(len(indices), 1, size, size, generator=torch.Generator().manual_seed(2))
    batch["y"] = op.A(x)
    return batch, op, x


# -- factory and keys --------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec, cls, kind, channels, cond_channels", [
    (MRI_SPEC, MRI, "ambient", 2, 2),
    (CT_SPEC, CT, "ambient", 1, 1),
    (PIX_SPEC, PixelMasks, "ambient", 1, 1),
    ({"family": "image", "shape": [8, 8], "corruption": "noise"}, DataSpace, "data", 1, 0),
    ({"family": "image", "shape": [8, 8], "corruption": "blur"}, DataSpace, "data", 1, 0),
    ({"family": "image", "shape": [8, 8], "corruption": "downsample", "factor": 2}, DataSpace, "data", 1, 0),
])
def test_factory_picks_the_adapter(spec, cls, kind, channels, cond_channels):
    space = family_of(spec)
    assert type(space) is cls
    assert (space.kind, space.channels, space.cond_channels) == (kind, channels, cond_channels)


@pytest.mark.parametrize("spec", [{"family": "pet"}, {"family": "image", "corruption": "jpeg"}])
def test_factory_rejects_unknown_specs(spec):
    with pytest.raises(ValueError, match="unknown"):
        family_of(spec)


def test_further_generator_is_keyed_by_seed_and_index_only():
    draw = lambda s, i: torch.rand(5, generator=further_generator(s, i))  # noqa: E731
    assert torch.equal(draw(3, 17), draw(3, 17))
    assert not torch.equal(draw(3, 17), draw(3, 18))
    assert not torch.equal(draw(3, 17), draw(4, 17))


# -- further operators ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("two_d", [False, True])
def test_mri_further_masks_are_subsets_keep_the_centre_and_follow_the_r_plus_1_rule(two_d):
    spec, batch, op, _ = _mri_batch([4, 9, 11], two_d=two_d)
    m_hat = family_of(spec).measure(batch).further(seed=0).op.mask  # (B, 1, 1|H, W)
    assert m_hat.shape == op.mask.shape
    full, thin = op.mask.flatten(1) != 0, m_hat.flatten(1) != 0
    centers = batch["centers"].flatten(1)
    assert bool((thin <= full).all()) and bool((thin[centers]).all())
    for b in range(3):
        n, size = int(full[b].sum()), full.shape[1]
        candidates = int((full[b] & ~centers[b]).sum())
        assert int(thin[b].sum()) == n - min(further_drop_count(n, size), candidates)
    assert bool((thin != full).any())


def test_further_masks_are_fixed_per_index_across_calls_and_batch_compositions():
    spec, batch, _, _ = _mri_batch([4, 9, 11])
    m = family_of(spec).measure(batch)
    first = m.further(seed=5).op.mask
    again = m.further(seed=5).op.mask
    _, sub, _, _ = _mri_batch([11, 4])
    other = family_of(spec).measure(sub).further(seed=5).op.mask
    assert torch.equal(first, again)
    assert torch.equal(other[0], first[2]) and torch.equal(other[1], first[0])
    assert not torch.equal(m.further(seed=6).op.mask, first)

    ct = family_of(CT_SPEC)
    batch, _, _ = _ct_batch([3, 8])
    sub, _, _ = _ct_batch([8])
    assert torch.equal(ct.measure(sub).further(1).op.views[0], ct.measure(batch).further(1).op.views[1])

    pix = family_of(PIX_SPEC)
    batch, _, _ = _pixel_batch([3, 8])
    sub, _, _ = _pixel_batch([8])
    assert torch.equal(pix.measure(sub).further(1).op.mask[0], pix.measure(batch).further(1).op.mask[1])


def test_ct_further_views_drop_the_default_count():
    batch, op, _ = _ct_batch([0, 1, 2])
    op_hat = family_of(CT_SPEC).measure(batch).further(seed=0).op
    full, thin = op.sampled_views(), op_hat.sampled_views()
    assert bool((thin <= full).all())
    assert thin.sum(-1).tolist() == [10 - default_view_drop(30, 10)] * 3
    assert op_hat.views.device == batch["y"].device


def test_pixel_further_mask_is_a_subset_at_density_one_minus_delta():
    batch, op, _ = _pixel_batch([0, 1], size=96)
    op_hat = family_of(PIX_SPEC).measure(batch).further(seed=0).op
    kept = op_hat.mask[op.mask != 0]
    assert bool((op_hat.mask <= op.mask).all())
    assert abs(float(kept.mean()) - (1 - PIX_SPEC["delta"])) < 0.03


def test_pixel_further_mask_from_one_generator_equals_the_row_by_row_draw():
    from rsd_sci.physics.inpaint import PixelMask, further_pixel_mask

    mask = (torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(1)) > 0.3).float()
    g = torch.Generator().manual_seed(2)
    rows = torch.cat([further_pixel_mask(mask[i:i + 1], 0.2, g) for i in range(5)])
    g = torch.Generator().manual_seed(2)
    assert torch.equal(PixelMask(mask).further([g] * 5, 0.2).mask, rows)


# -- conditioning and layouts -----------------------------------------------------------------------------
def test_mri_cond_is_the_line_pattern_and_ones():
    spec, batch, _, _ = _mri_batch([1, 2])
    m_hat = family_of(spec).measure(batch).further(0)
    op_hat, c = m_hat.op, m_hat.cond()
    assert c.shape == (2, 2, 12, 32) and c.dtype == torch.float32
    for b in range(2):
        line = op_hat.mask[b, 0, 0]
        assert torch.equal(c[b, 0], line.expand(12, 32)) and bool((c[b, 1] == 1).all())


def test_mri_cond_of_a_2d_mask_is_the_mask():
    spec, batch, _, _ = _mri_batch([1, 2], two_d=True)
    m_hat = family_of(spec).measure(batch).further(0)
    assert torch.equal(m_hat.cond()[:, :1], m_hat.op.mask)


def test_ct_and_pixel_cond():
    batch, _, _ = _ct_batch([0, 1])
    assert torch.equal(family_of(CT_SPEC).measure(batch).cond(), torch.ones(2, 1, 16, 16))
    batch, _, _ = _pixel_batch([0, 1])
    m_hat = family_of(PIX_SPEC).measure(batch).further(0)
    assert torch.equal(m_hat.cond(), m_hat.op.mask)


def test_mri_layout_round_trip_and_noise():
    space = family_of(MRI_SPEC).measure({"y": torch.zeros(3, 4, 64, 64, dtype=torch.complex64),
                                         "masks": torch.ones(3, 64)})
    assert space.noise_shape() == (3, 2, 64, 64)
    n = space.to_image(torch.randn(space.noise_shape(), generator=torch.Generator().manual_seed(0)))
    assert n.shape == (3, 1, 64, 64) and n.is_complex()   # σ per real part: N(0, 1) each
    assert abs(float(n.real.std()) - 1) < 0.05 and abs(float(n.imag.std()) - 1) < 0.05
    assert torch.equal(space.to_image(space.to_channels(n)), n)
    assert family_of(CT_SPEC).measure({"y": torch.zeros(2, 1, 30, 16)}).noise_shape() == (2, 1, 16, 16)


# -- R̂·Â and the measured input ---------------------------------------------------------------------------------
def test_mri_single_coil_project_is_the_zero_filled_image():
    spec, batch, _, x = _mri_batch([1, 2])
    m_hat = family_of(spec).measure(batch).further(0)
    expected = ifft2c(m_hat.op.mask * fft2c(x))
    assert torch.allclose(m_hat.project(x), complex_to_channels(expected), atol=1e-5)


def test_mri_multicoil_reconstruction_uses_unit_rss_maps():
    g = torch.Generator().manual_seed(3)
    maps = torch.from_numpy(birdcage_maps(4, 12, 32))[None]
    gain = 0.5 + torch.rand(1, 1, 12, 32, generator=g)  # maps NOT unit RSS
    op_hat = MRIOperator(torch.ones(1, 1, 1, 32), maps * gain)
    x = _crandn(g, 1, 1, 12, 32)
    batch = {"y": op_hat.A(x), "masks": torch.ones(1, 32), "coil_maps": maps}
    got = family_of(MRI_SPEC).measure(batch, op_hat).project(x)
    unit = MRIOperator(torch.ones(1, 1, 1, 32), normalize_maps(maps * gain))
    assert torch.allclose(got, complex_to_channels(unit.A_adjoint(op_hat.A(x))), atol=1e-5)
    unit_op = MRIOperator(torch.ones(1, 1, 1, 32), maps)  # unit-RSS maps: R̂ = Â^H, and R̂Â = I at a full mask
    assert torch.allclose(family_of(MRI_SPEC).measure(batch, unit_op).project(x), complex_to_channels(x), atol=1e-5)


@pytest.mark.parametrize("family", ["mri_single", "mri_multi", "ct", "pixel"])
def test_network_input_is_the_projection_of_the_image_behind_the_data(family):
    """y = A x  =>  R̂(P_M̂ y) = R̂·Â x: the input can be built from the measurement alone."""
    if family.startswith("mri"):
        spec, batch, _, x = _mri_batch([1, 2], coils=1 if family == "mri_single" else 3)
    elif family == "ct":
        (batch, _, x), spec = _ct_batch([1, 2]), CT_SPEC
    else:
        (batch, _, x), spec = _pixel_batch([1, 2]), PIX_SPEC
    m_hat = family_of(spec).measure(batch).further(0)
    got = m_hat.network_input()
    assert got.shape == m_hat.noise_shape()
    assert torch.allclose(got, m_hat.project(x), atol=1e-5)


# -- residuals -------------------------------------------------------------------------------------------------
def test_mri_full_mask_residual_is_the_channel_mean_square():
    g = torch.Generator().manual_seed(4)
    op = MRIOperator(torch.ones(32))
    x, d = _crandn(g, 2, 1, 8, 32), _crandn(g, 2, 1, 8, 32)
    got = family_of(MRI_SPEC).measure({"y": op.A(x), "masks": torch.ones(2, 32)}, op).residual(d)
    expected = (complex_to_channels(d) - complex_to_channels(x)).square().flatten(1).mean(1)
    assert torch.allclose(got, expected, rtol=1e-5)


def test_mri_residual_counts_real_measured_entries_and_matches_the_image_form():
    spec, batch, op, x = _mri_batch([1, 2])
    m = family_of(spec).measure(batch)
    d = _crandn(torch.Generator().manual_seed(5), 2, 1, 12, 32)
    lines = batch["masks"].sum(-1).float()
    assert torch.equal(m.measured_count(), 2 * 12 * lines)
    # single-coil: ‖A d − y‖² = ‖A^H A d − A^H y‖² (A^H A is an orthogonal projection)
    image_form = (op.normal(d) - op.A_adjoint(batch["y"])).abs().square().flatten(1).sum(1) / (2 * 12 * lines)
    assert torch.allclose(m.residual(d), image_form, rtol=1e-5)
    mc_spec, mc_batch, _, _ = _mri_batch([1, 2], coils=3)
    assert torch.equal(family_of(mc_spec).measure(mc_batch).measured_count(), 2 * 3 * 12 * lines)


def test_ct_residual_is_the_ramp_filtered_one():
    batch, op, x = _ct_batch([1, 2])
    m = family_of(CT_SPEC).measure(batch)
    d = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(6))
    r = op.A(d) - batch["y"]
    count = 10 * 16
    weighted = ramp_filter(r).square().flatten(1).sum(1) / count
    unweighted = r.square().flatten(1).sum(1) / count
    got = m.residual(d)
    assert torch.allclose(got, weighted, rtol=1e-5)
    assert not torch.allclose(got, unweighted, rtol=1e-2)
    assert torch.equal(m.measured_count(), torch.full((2,), float(count)))


def test_pixel_residual_by_hand():
    m = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    batch = {"masks": m, "index": torch.tensor([0]), "y": torch.tensor([[[[1.0, 2.0], [3.0, 0.0]]]])}
    d = torch.tensor([[[[1.5, 2.0], [2.0, 9.0]]]])
    got = family_of(dict(PIX_SPEC, shape=[2, 2])).measure(batch).residual(d)
    assert torch.allclose(got, torch.tensor([(0.5**2 + 0.0 + 1.0**2) / 3]))


def test_data_space_is_the_measurement_itself():
    spec = {"family": "image", "shape": [8, 8], "corruption": "downsample", "factor": 2}
    y = torch.randn(2, 1, 4, 4)
    m = family_of(spec).measure({"y": y, "index": torch.tensor([0, 1])})
    assert torch.equal(m.network_input(), y)
    assert m.further(0) is m and m.cond() is None
    assert m.project(torch.ones(2, 1, 8, 8)).shape == (2, 1, 4, 4)
    d = torch.zeros_like(y)
    assert torch.allclose(m.residual(d), y.square().flatten(1).mean(1))


# -- one class per family, bound to a batch ------------------------------------------------------------------
@pytest.mark.parametrize("case", ["mri", "ct", "pixel"])
def test_further_keeps_the_batch_and_carries_the_further_operator(case):
    """m.further(seed) is the same class on the same batch with the keyed Â; further(seed, index=k) keys it
    by k instead (the distillation's fresh operators), as the batch with index k would; a family bound to
    no batch says so."""
    if case == "mri":
        spec, batch, op, x = _mri_batch([3, 7])
    elif case == "ct":
        (batch, op, x), spec = _ct_batch([3, 7]), CT_SPEC
    else:
        (batch, op, x), spec = _pixel_batch([3, 7]), PIX_SPEC
    family = family_of(spec)
    m = family.measure(batch)
    assert isinstance(m, Measurement) and type(m) is type(family) and m.batch is batch and len(m) == 2
    m_hat = m.further(seed=4)
    assert type(m_hat) is type(m) and m_hat.batch is batch and type(m_hat.op) is type(op)
    by_hand = family.measure(batch, m_hat.op)
    assert torch.equal(m_hat.network_input(), by_hand.network_input())
    d = x + 0.1 * torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(8))
    assert not torch.allclose(m_hat.residual(d), m.residual(d))   # Â measures fewer rows than A
    keyed = m.further(4, index=torch.tensor([11, 12]))
    reindexed = family.measure(dict(batch, index=torch.tensor([11, 12]))).further(4)
    assert keyed.batch is batch and torch.equal(keyed.cond(), reindexed.cond())
    with pytest.raises(TypeError, match="no batch"):
        family.network_input()


def test_measurement_consistency_is_the_unweighted_data_term():
    """‖P_M(A x − y)‖²/|M| of a clean image, for every kind (CT: no ramp filter; data kind: A applied)."""
    batch, op, x = _ct_batch([1, 2])
    m = family_of(CT_SPEC).measure(batch)
    d = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))
    r = op.A(d) - batch["y"]
    assert torch.allclose(m.consistency(d), r.square().flatten(1).sum(1) / (10 * 16), rtol=1e-5)
    spec = {"family": "image", "shape": [8, 8], "corruption": "downsample", "factor": 2}
    y = torch.randn(2, 1, 4, 4)
    m = family_of(spec).measure({"y": y, "index": torch.tensor([0, 1])})
    clean = torch.randn(2, 1, 8, 8)
    assert torch.allclose(m.consistency(clean), (m.A(clean) - y).square().flatten(1).mean(1))
    assert m.further(0).op is m.op and torch.equal(m.reproject(y), y)


@pytest.mark.parametrize("spec, member", [
    (MRI_SPEC, "ambient"), (CT_SPEC, "ambient"), (PIX_SPEC, "ambient"),
    ({"family": "image", "shape": [8, 8], "corruption": "noise"}, "tweedie"),
    ({"family": "image", "shape": [8, 8], "corruption": "blur"}, "plain"),
])
def test_family_member_stop_and_baselines(spec, member):
    family = family_of(spec)
    assert family.member(0.0) == member
    assert family.default_stop_sigma == (0.1 if member == "ambient" else 0.0)
    assert family.baselines == {"mri": ("zero-filled", "cg-sense", "l1-wavelet"), "ct": ("fbp", "tv")}.get(
        spec["family"], ("corrupted",))
    assert family.teacher_is_clean_prior == (spec.get("corruption") not in ("blur", "downsample"))
    if spec.get("corruption") == "blur":
        assert family.member([0.0, 0.1]) == "tweedie"   # noisy blur: Ambient-Tweedie


@pytest.mark.parametrize("corruption, factor", [("blur", 1), ("downsample", 2)])
def test_the_corrupted_baseline_shows_the_measurement_on_the_clean_grid(corruption, factor):
    """R(y) of blur is y itself (A^T would blur twice); of down-sampling, y repeated f×f (A^T would also
    divide by f²); the metric view puts low-resolution sets on the clean grid the same way."""
    spec = {"family": "image", "shape": [8, 8], "corruption": corruption, "factor": 2, "blur_kernel": 3,
            "blur_std": 1.0}
    y = torch.randn(2, 1, 8 // factor, 8 // factor)
    m = family_of(spec).measure({"y": y, "index": torch.tensor([0, 1])})
    expected = y.repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    assert torch.allclose(m.R(y), expected)
    assert np.array_equal(m.metric_view(y[:, 0].numpy(), 0.0), expected[:, 0].numpy())
    assert baselines_of("image") == ("corrupted",)
