"""Posterior reconstruction: classical baselines (zero-filled/FBP, CG-SENSE, L1-wavelet, TV for CT),
A-DPS with a teacher, and the generator prior."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from rsd_sci.data.phantoms import ct_phantoms, mri_phantoms
from rsd_sci.data.simulate_ct import ct_scale
from rsd_sci.diffusion.model import build_model
from rsd_sci.measurement import family_of
from rsd_sci.physics.coil_maps import birdcage_maps
from rsd_sci.physics.ct import view_mask
from rsd_sci.physics.masks import MaskSpec
from rsd_sci.physics.base import operator_norm
from rsd_sci.posterior.adps import adps
from rsd_sci.posterior.baselines import cg_sense, l1_wavelet, tv_ct, zero_filled
from rsd_sci.posterior.data_consistency import conjugate_gradient
from rsd_sci.posterior.generator_prior import GeneratorObjective, generator_prior

TINY = {"features": (8, 16), "num_res_blocks": 1, "attention_levels": (False, False), "num_head_channels": 8,
        "norm_num_groups": 4}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread here: on a loaded 2-core machine two spinning threads can slow a tiny network
    by 10× or more (restored afterwards)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _mri_batch(n=2, size=16, coils=1, accel=4, center_fraction=0.125, seed=0):
    """Phantom MRI batch: x complex (n, 1, size, size), noiseless y = A x, line masks keyed by index."""
    spec = {"family": "mri", "shape": [size, size], "coils": coils,
            "mask": {"kind": "random", "acceleration": accel, "center_fraction": center_fraction}}
    made = [MaskSpec("random", accel, center_fraction).make((size, size), seed=i) for i in range(n)]
    batch = {"masks": torch.from_numpy(np.stack([m.mask for m in made])),
             "centers": torch.from_numpy(np.stack([m.center for m in made])),
             "index": torch.arange(n), "sigma_n": torch.zeros(n)}
    if coils > 1:
        batch["coil_maps"] = torch.from_numpy(birdcage_maps(coils, size, size))[None].expand(n, -1, -1, -1)
    x = torch.from_numpy(mri_phantoms(n, size, seed))[:, None]
    op = family_of(spec).operator(batch)
    batch["y"] = op.A(x)
    return spec, batch, op, x


def _nmse(u, x):
    return float((u - x).abs().square().sum() / x.abs().square().sum())


# -- baselines -------------------------------------------------------------------------------------------
def test_zero_filled_is_the_adjoint_for_mri_and_fbp_for_ct():
    _, batch, op, _ = _mri_batch(coils=4)
    assert torch.allclose(zero_filled(op, batch["y"]), op.A_adjoint(batch["y"]))
    ct = family_of({"family": "ct", "image_size": 16, "n_angles": 30}).operator(
        {"masks": torch.from_numpy(np.stack([view_mask(30, 10)] * 2))})
    sino = ct.A(torch.randn(2, 1, 16, 16))
    assert torch.allclose(zero_filled(ct, sino), ct.fbp(sino))


def test_cg_sense_recovers_fully_sampled_multicoil_data():
    _, batch, _, x = _mri_batch(coils=4, accel=1)
    assert bool(batch["masks"].all())
    u = cg_sense(batch["y"], batch["masks"], batch["coil_maps"])
    assert u.shape == x.shape and u.dtype == torch.complex64
    assert _nmse(u, x) ** 0.5 < 1e-3


def test_cg_sense_beats_zero_filled_at_r4_and_equals_sigpy():
    import sigpy
    import sigpy.mri.app

    _, batch, op, x = _mri_batch(n=2, size=64, coils=8)
    u = cg_sense(batch["y"], batch["masks"], batch["coil_maps"])
    assert _nmse(u, x) < 0.5 * _nmse(zero_filled(op, batch["y"]), x)   # measured 0.031 vs 0.072
    w = np.broadcast_to(batch["masks"][1].numpy().astype(np.float32), (64, 64))
    direct = sigpy.mri.app.SenseRecon(batch["y"][1].numpy(), batch["coil_maps"][1].numpy(), lamda=0.0,
                                      weights=w, max_iter=30, show_pbar=False).run()
    assert np.allclose(u[1, 0].numpy(), direct, atol=1e-4)


def test_cg_sense_single_coil_is_zero_filled_and_stays_finite():
    """A^H A is a projection: CG converges in one step and must stop there (round-off would diverge)."""
    _, batch, op, _ = _mri_batch(n=2, size=32)
    u = cg_sense(batch["y"], batch["masks"], None, max_iter=30)
    assert torch.allclose(u, zero_filled(op, batch["y"]), atol=1e-5)


def test_l1_wavelet_beats_zero_filled_on_phantoms():
    _, batch, op, x = _mri_batch(n=2, size=64, center_fraction=0.08)
    u = l1_wavelet(batch["y"], batch["masks"], None)
    assert u.shape == x.shape and bool(torch.isfinite(torch.view_as_real(u)).all())
    assert _nmse(u, x) < 0.9 * _nmse(zero_filled(op, batch["y"]), x)   # measured 0.086 vs 0.100


def test_l1_wavelet_is_deterministic_and_leaves_numpy_random_alone():
    """sigpy's step size comes from a power iteration on numpy's global random state (unseeded, it made
    two identical calls differ by ~1e-5); the caller's random stream is left where it was."""
    _, batch, _, _ = _mri_batch(n=1, size=32)
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = l1_wavelet(batch["y"], batch["masks"], max_iter=5)
    assert np.random.random() == expected_next
    assert torch.equal(first, l1_wavelet(batch["y"], batch["masks"], max_iter=5))


def test_tv_beats_fbp_on_sparse_view_ct():
    n = 64
    x = torch.from_numpy(ct_scale().apply(ct_phantoms(2, n, 0))).float()[:, None]
    op = family_of({"family": "ct", "image_size": n, "n_angles": 180}).operator(
        {"masks": torch.from_numpy(np.stack([view_mask(180, 60)] * 2))})
    y = op.A(x)
    r = torch.arange(n) - n // 2 + 0.5
    disc = (r[:, None] ** 2 + r[None] ** 2) <= (n / 2 - 1) ** 2  # inside the scanned circle
    fbp, tv = op.fbp(y), tv_ct(op, y)
    assert tv.shape == x.shape
    assert _nmse(tv[..., disc], x[..., disc]) < 0.6 * _nmse(fbp[..., disc], x[..., disc])  # 0.0029 vs 0.0086
    assert _nmse(tv, x) < _nmse(fbp, x)


# -- A-DPS ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mri_teacher():
    spec, batch, op, x = _mri_batch(n=2, size=16)
    torch.manual_seed(0)
    teacher = build_model(spec, TINY, 0.0)
    teacher.denoiser.eval()
    return teacher, teacher.family.measure(batch)


def _residual_norm(m, out):
    r = m.output_misfit(out)
    return torch.view_as_real(r).flatten(1).norm(dim=1) if r.is_complex() else r.flatten(1).norm(dim=1)


def test_adps_shape_finite_deterministic_and_data_consistency(mri_teacher):
    teacher, m = mri_teacher
    calls = []
    out = adps(teacher, m, steps=8, seed=3, progress=lambda i, n: calls.append((i, n)))
    assert out.shape == (2, 2, 16, 16) and bool(torch.isfinite(out).all())
    assert calls[-1] == (8, 8)
    assert torch.equal(out, adps(teacher, m, steps=8, seed=3))
    assert not torch.equal(out, adps(teacher, m, steps=8, seed=4))
    plain = adps(teacher, m, steps=8, seed=3, zeta=0.0)
    assert bool((_residual_norm(m, out) < _residual_norm(m, plain)).all())


def test_adps_on_ct_steps_by_one_over_the_operator_norm():
    spec = {"family": "ct", "image_size": 16, "n_angles": 30, "n_views": 10, "view_kind": "sparse"}
    batch = {"masks": torch.from_numpy(np.stack([view_mask(30, 10), np.roll(view_mask(30, 10), 1)])),
             "index": torch.arange(2), "sigma_n": torch.zeros(2)}
    op = family_of(spec).operator(batch)
    batch["y"] = op.A(torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0)))
    m = family_of(spec).measure(batch)
    zeta = m.default_zeta()
    assert torch.allclose(zeta, 1.0 / operator_norm(op, (2, 1, 16, 16)))
    assert 0.01 < float(zeta[0]) < 0.2  # ‖A‖ = O(√(views·N)), far from 1
    mri = family_of({"family": "mri"})
    assert torch.equal(mri.measure({"y": torch.zeros(3), "masks": torch.ones(3, 4)}).default_zeta(), torch.ones(3))
    torch.manual_seed(0)
    teacher = build_model(spec, TINY, 0.0)
    out = adps(teacher, m, steps=4)
    assert out.shape == (2, 1, 16, 16) and bool(torch.isfinite(out).all())


def _gaussian_teacher(spec, s=1.0, member="ambient", seen=None):
    """The exact denoiser of x ~ N(0, s²I) (Ambient: of the masked input, E[x | M̂ ⊙ x_t] = s²/(s²+σ²)·M̂ ⊙ x_t)."""
    def D(x, sigma, cond=None):
        if seen is not None:
            seen.append(float(sigma[0]))
        return s**2 / (s**2 + sigma.view(-1, 1, 1, 1) ** 2) * x
    return types.SimpleNamespace(denoiser=D, family=family_of(spec), member=member)


def test_adps_with_the_exact_gaussian_denoiser_moves_towards_the_data():
    """Measured pixels outside M̂ stay unfitted (this D ignores them): a floor, hence the factor 0.5."""
    spec = {"family": "image", "shape": [8, 8], "corruption": "inpaint", "p": 0.3, "delta": 0.05}
    g = torch.Generator().manual_seed(0)
    masks = (torch.rand(4, 1, 8, 8, generator=g) > 0.3).float()
    x = torch.randn(4, 1, 8, 8, generator=g)
    batch = {"masks": masks, "y": masks * x, "index": torch.arange(4)}
    teacher = _gaussian_teacher(spec)
    m = teacher.family.measure(batch)
    far = _residual_norm(m, adps(teacher, m, steps=40, zeta=0.0))
    near = _residual_norm(m, adps(teacher, m, steps=40, zeta=0.5))
    assert bool((near < 0.5 * far).all())


def test_adps_tweedie_teacher_stops_at_sigma_n():
    spec = {"family": "image", "shape": [4, 4], "corruption": "noise"}
    seen = []
    teacher = _gaussian_teacher(spec, member="tweedie", seen=seen)
    g = torch.Generator().manual_seed(1)
    batch = {"y": torch.randn(2, 1, 4, 4, generator=g) * 1.1, "sigma_n": torch.tensor([0.5, 0.5]),
             "index": torch.arange(2)}
    m = teacher.family.measure(batch)
    out = adps(teacher, m, steps=30, zeta=0.3)
    assert min(seen) >= 0.5 and len(seen) < 30
    plain = adps(teacher, m, steps=30, zeta=0.0)
    assert bool(((out - batch["y"]).flatten(1).norm(dim=1) < (plain - batch["y"]).flatten(1).norm(dim=1)).all())


# -- the generator prior ------------------------------------------------------------------------------------
def test_generator_prior_fits_the_data_deterministically(mri_teacher):
    generator, m = mri_teacher
    objective = GeneratorObjective(generator, m, lam=0.1, seed=0, sigma_init=2.5)
    start = generator_prior(generator, m, iters=0, dc_steps=0)
    out = generator_prior(generator, m, iters=15, dc_steps=0)
    assert out.shape == (2, 2, 16, 16) and bool(torch.isfinite(out).all())
    assert bool((objective.data_term(out) < objective.data_term(start)).all())
    assert torch.equal(out, generator_prior(generator, m, iters=15, dc_steps=0))
    # without the finish: this untrained generator's images lie in the measured lines, which the
    # single-coil data-consistency step replaces by y whatever z was
    spread = generator_prior(generator, m, iters=3, restarts=2, dc_steps=0)
    assert spread.shape == (2, 2, 2, 16, 16)
    assert not torch.allclose(spread[0], spread[1])


def test_generator_prior_reaches_the_closed_form_optimum():
    """x_g = z (A = I): ‖z − y‖²/n + lam·‖z‖²/n is minimised by z = y/(1 + lam)."""
    spec = {"family": "image", "shape": [2, 2], "corruption": "noise"}
    model = types.SimpleNamespace(denoiser=lambda x, sigma, cond: x / sigma.view(-1, 1, 1, 1))
    batch = {"y": torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]]), "index": torch.tensor([0])}
    out = generator_prior(model, family_of(spec).measure(batch), iters=600, lr=0.02, lam=0.5)
    assert torch.allclose(out, batch["y"] / 1.5, atol=0.02)


def test_generator_prior_ends_consistent_with_the_measured_lines(mri_teacher):
    """Single-coil MRI: the finish puts y back on the measured lines and keeps the generator's elsewhere."""
    from rsd_sci.physics.fourier import fft2c

    generator, m = mri_teacher
    raw = m.to_image(generator_prior(generator, m, iters=3, dc_steps=0))
    out = m.to_image(generator_prior(generator, m, iters=3))
    measured = m.op.mask.bool().expand_as(m.y)
    assert torch.allclose(fft2c(out)[measured], m.y[measured], atol=1e-4)
    assert torch.allclose(fft2c(out)[~measured], fft2c(raw)[~measured], atol=1e-4)
    assert not torch.allclose(fft2c(raw)[measured], m.y[measured], atol=1e-2)


def test_generator_prior_ends_with_the_block_means_of_a_down_sampled_image():
    """Down-sampling ×2: the finish (the family's one CG step) makes every 2×2 block's mean y's and keeps
    the generator's detail within each block; noise and blur have no finish (it would fit them back in)."""
    spec = {"family": "image", "shape": [4, 4], "corruption": "downsample", "factor": 2}
    model = types.SimpleNamespace(denoiser=lambda x, sigma, cond: x / sigma.view(-1, 1, 1, 1))
    m = family_of(spec).measure({"y": torch.tensor([[[[1.0, -2.0], [0.5, 3.0]]]]), "index": torch.tensor([0])})
    raw, out = generator_prior(model, m, iters=0, dc_steps=0), generator_prior(model, m, iters=0)
    assert torch.allclose(m.op.A(out), m.y, atol=1e-5) and not torch.allclose(m.op.A(raw), m.y, atol=1e-2)
    detail = lambda x: x - torch.repeat_interleave(torch.repeat_interleave(m.op.A(x), 2, -1), 2, -2)
    assert torch.allclose(detail(out), detail(raw), atol=1e-5)
    assert [family_of(dict(spec, corruption=c)).consistency_steps for c in ("noise", "blur")] == [0, 0]


# -- data consistency by conjugate gradients -------------------------------------------------------------------
def test_conjugate_gradient_from_zero_is_cg_sense():
    """From x = 0, CG on A^H A x = A^H y is CG-SENSE with λ = 0 (sigpy, the independent reference)."""
    _, batch, op, x = _mri_batch(n=2, size=32, coils=8)
    m = family_of({"family": "mri", "shape": [32, 32], "coils": 8}).measure(batch)
    ours = conjugate_gradient(m, torch.zeros_like(x), iters=10)
    assert torch.allclose(ours, cg_sense(batch["y"], batch["masks"], batch["coil_maps"], max_iter=10), atol=1e-4)


def test_conjugate_gradient_on_ct_fits_the_views_and_leaves_the_null_space():
    """CT: the residual falls, and the change x − x_0 lies in the range of A^H (orthogonal to A's null
    space): a start that differs by a null-space image ends differing by the same image."""
    family = family_of({"family": "ct", "image_size": 16, "n_angles": 30})
    batch = {"masks": torch.from_numpy(np.stack([view_mask(30, 10)] * 2)), "index": torch.arange(2)}
    op = family.operator(batch)
    truth = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    m = family.measure(dict(batch, y=op.A(truth)))
    start = torch.zeros_like(truth)
    out = conjugate_gradient(m, start, iters=10)
    before, after = (m.A(start) - m.y).norm(), (m.A(out) - m.y).norm()
    assert after < 0.1 * before
    basis = torch.eye(256).reshape(256, 1, 16, 16)
    matrix = family.operator({"masks": batch["masks"][:1].expand(256, -1)}).A(basis).reshape(256, -1).T.double()
    _, singular, vh = torch.linalg.svd(matrix)
    rank = int((singular > 1e-6 * singular[0]).sum())
    null = (vh[rank:].T @ torch.randn(256 - rank, 2, generator=torch.Generator().manual_seed(1)).double())
    null = null.T.reshape(2, 1, 16, 16).float()        # two images A does not see
    assert rank < 256 and float(op.A(null).norm()) < 1e-4 * float(null.norm())
    early = conjugate_gradient(m, start, iters=5)   # few steps: float32 round-off in A^H A's near-null
    shifted = conjugate_gradient(m, start + null, iters=5)   # directions grows with the step count
    assert torch.allclose(shifted - null, early, atol=1e-3 * float(early.abs().max()))
