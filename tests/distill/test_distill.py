"""Distillation pieces: the schedule, the generator loss by hand, NaN filtering, synthetic measurements,
and the generator's view of each corruption family built exactly as the teacher's data were."""

from __future__ import annotations

import pytest
import torch

from rsd_sci.diffusion.losses import ambient_input
from rsd_sci.distill.distiller import Distiller, generate
from rsd_sci.distill.draws import GeneratorDraws, KeyedDraws
from rsd_sci.distill.losses import finite_mean, generator_loss, measure, sigma_of_t
from rsd_sci.measurement import family_of
from tests.measurement.test_measurement_model import CT_SPEC, PIX_SPEC, _ct_batch, _mri_batch, _pixel_batch


def test_karras_schedule_of_t():
    s = sigma_of_t(torch.tensor([0.0, 0.8, 1.0]))
    torch.testing.assert_close(s, torch.tensor([0.002, 24.4, 80.0]), rtol=2e-3, atol=1e-5)
    assert bool((sigma_of_t(torch.linspace(0, 1, 50)).diff() > 0).all())


def test_generator_loss_by_hand():
    f_t, f_f, u = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 1.0]]), torch.tensor([[0.0, 1.0]])
    # P = I: d = f_t - f_f = (0.5, 1); w = mean|u - f_t| = (1 + 1)/2 = 1;
    # L = Σ d·(f_t - u - 1.2 d) = 0.5·(1 - 0.6) + 1·(1 - 1.2) = 0.2 - 0.2 = 0
    assert float(generator_loss(f_t, f_f, u, lambda f: f, alpha=1.2)) == pytest.approx(0.0, abs=1e-7)
    # α = 1: 0.5·0.5 + 1·0 = 0.25
    assert float(generator_loss(f_t, f_f, u, lambda f: f, alpha=1.0)) == pytest.approx(0.25)
    # P = keep the first entry only: P u = (0, 0), P f_t = (1, 0), d = (0.5, 0),
    # w = mean(|0 − 1|, |0 − 0|) = 0.5, L = 0.5·(1 − 0 − 1.2·0.5) / 0.5 = 0.4
    first = lambda f: f * torch.tensor([[1.0, 0.0]])  # noqa: E731
    assert float(generator_loss(f_t, f_f, first(u), first, alpha=1.2)) == pytest.approx(0.4)


def test_generator_loss_pushes_u_towards_the_teacher():
    """The direct gradient in u is −(P f_φ − P f_ψ)/w (w is a stop-gradient)."""
    f_t, f_f = torch.randn(3, 5), torch.randn(3, 5)
    u = torch.randn(3, 5, requires_grad=True)
    generator_loss(f_t, f_f, u, lambda f: f).sum().backward()
    w = (u.detach() - f_t).abs().mean(dim=1, keepdim=True)
    torch.testing.assert_close(u.grad, -(f_t - f_f) / w)


def test_finite_mean_drops_bad_samples():
    loss, dropped = finite_mean(torch.tensor([1.0, float("nan"), 3.0, float("inf")]))
    assert float(loss) == 2.0 and dropped == 2
    assert torch.isnan(finite_mean(torch.tensor([float("nan")]))[0])


def test_measure_puts_noise_on_measured_entries_only():
    spec, batch, op, x = _mri_batch([0, 1])
    gen = torch.Generator().manual_seed(0)   # |σ_n n| of complex noise has std 0.33 at σ_n 0.5: seeded, not flaky
    y = measure(op, x, torch.tensor([0.0, 0.5]), lambda shape: torch.randn(2, *shape, generator=gen))
    torch.testing.assert_close(y[0], op.A(x)[0])          # σ_n = 0: the exact measurement
    unmeasured = (op.keep_measured(torch.ones_like(y)) == 0)
    assert bool(unmeasured.any()) and bool((y[unmeasured] == 0).all())
    assert 0.3 < float((y[1] - op.A(x)[1]).abs()[~unmeasured[1]].std()) < 0.8


def _families():
    mri = _mri_batch([0, 1], coils=1)
    mri8 = _mri_batch([0, 1], coils=4)
    ct_b, ct_op, _ = _ct_batch([0, 1])
    px_b, px_op, _ = _pixel_batch([0, 1])
    out = [("mri-1coil", mri[0], mri[1], mri[2]), ("mri-4coil", mri8[0], mri8[1], mri8[2]),
           ("ct", CT_SPEC, ct_b, ct_op), ("inpaint", PIX_SPEC, px_b, px_op)]
    for corruption, extra in (("noise", {}), ("blur", {"blur_kernel": 5, "blur_std": 1.0}),
                              ("downsample", {"factor": 2})):
        spec = {"family": "image", "shape": [8, 8], "corruption": corruption, **extra}
        op = family_of(spec).operator({})
        batch = {"y": op.A(torch.randn(2, 1, 8, 8)), "index": torch.arange(2), "sigma_n": torch.zeros(2)}
        out.append((corruption, spec, batch, op))
    return out


@pytest.mark.parametrize("name, spec, batch, op", _families(), ids=[f[0] for f in _families()])
def test_generator_view_equals_the_teachers_input(name, spec, batch, op):
    """x_t = P(x + σε) of a clean image x equals the teacher's network image of the measurement A x
    (ambient: R̂(P_M̂ A x) + σ R̂Â ε; data space: A x + σ ε), and u = P(x) its noise-free part."""
    m = family_of(spec).measure(dict(batch, sigma_n=torch.zeros(2)))
    x = m.to_image(torch.randn(m.generator_shape()))
    view = m.further(seed=3)
    sigma = torch.tensor([0.3, 2.0])
    eps = torch.randn(m.noise_shape())
    u = view.project(x)
    x_t = u + sigma.reshape(-1, *([1] * (u.dim() - 1))) * view.reproject(eps)
    clean = view.with_y(op.A(x))   # the measurement of x under the view's further operator
    if m.kind == "ambient":
        expected = ambient_input(clean, sigma, eps)
        torch.testing.assert_close(u, clean.network_input(), rtol=1e-5, atol=1e-5)
    else:
        expected = clean.y + sigma.reshape(-1, 1, 1, 1) * eps
        torch.testing.assert_close(view.reproject(u), u)  # P = I on the teacher's space
    torch.testing.assert_close(x_t, expected, rtol=1e-5, atol=1e-5)
    assert x_t.shape[1] == m.channels


def test_downsampling_generator_runs_at_full_resolution():
    from rsd_sci.diffusion.networks import build_backbone
    from rsd_sci.diffusion.precond import EDMDenoiser

    spec = {"family": "image", "shape": [16, 16], "corruption": "downsample", "factor": 2}
    m = family_of(spec).measure({"y": torch.zeros(2, 1, 8, 8), "sigma_n": torch.zeros(2), "index": torch.arange(2)})
    G = EDMDenoiser(build_backbone("tiny", 1, 0))
    x_g = generate(G, m, KeyedDraws(m.index, 0, 0))
    assert x_g.shape == (2, 1, 16, 16) and m.project(x_g).shape == (2, 1, 8, 8)


def test_keyed_draws_do_not_depend_on_the_batch():
    a = KeyedDraws(torch.tensor([5, 6]), seed=1, step=2)
    b = KeyedDraws(torch.tensor([6]), seed=1, step=2)
    torch.testing.assert_close(a.normal((3,), 4)[1], b.normal((3,), 4)[0])
    px_b, _, _ = _pixel_batch([0, 1])
    family = family_of(PIX_SPEC)
    both, second = family.measure(px_b), family.measure({k: v[1:] for k, v in px_b.items()})
    torch.testing.assert_close(a.further(both, 0).op.mask[1], b.further(second, 0).op.mask[0])
    assert not torch.equal(a.further(both, 0).op.mask, a.further(both, 1).op.mask)


def test_one_iteration_trains_only_fake_and_generator():
    from rsd_sci.diffusion.model import build_model

    spec, batch, op, x = _mri_batch([0, 1, 2, 3])
    batch = dict(batch, sigma_n=torch.full((4,), 0.05))
    network = {"features": (8, 16), "num_res_blocks": 1, "attention_levels": (False, False),
               "num_head_channels": 8, "norm_num_groups": 4}
    torch.manual_seed(0)
    teacher = build_model(spec, network, 0.05)
    with torch.no_grad():  # a teacher whose output layer is not zero, so the networks matter
        for p in teacher.denoiser.parameters():
            p.add_(0.01 * torch.randn_like(p))
    import copy
    fake, G = copy.deepcopy(teacher.denoiser), copy.deepcopy(teacher.denoiser)
    before = {k: [p.clone() for p in m.parameters()] for k, m in (("t", teacher.denoiser), ("f", fake), ("g", G))}
    d = Distiller(teacher, fake, G, torch.optim.Adam(fake.parameters(), lr=1e-3, betas=(0.0, 0.999)),
                  torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.0, 0.999)))
    draws = GeneratorDraws(4, torch.Generator().manual_seed(0))
    meas = teacher.family.measure(batch)
    m = d.iteration(meas, meas, draws, draws)
    assert all(torch.isfinite(torch.tensor(v)) for v in (m["fake_loss"], m["g_loss"]))
    changed = {k: any(not torch.equal(a, b) for a, b in zip(before[k], mod.parameters()))
               for k, mod in (("t", teacher.denoiser), ("f", fake), ("g", G))}
    assert changed == {"t": False, "f": True, "g": True}


class _FixedImage(torch.nn.Module):
    """A 'generator' that returns one learnable image whatever its input, (B, C, H, W)."""

    def __init__(self, shape):
        super().__init__()
        self.image = torch.nn.Parameter(torch.randn(shape, generator=torch.Generator().manual_seed(3)))

    def forward(self, x, sigma, cond=None):
        return self.image.expand(x.shape[0], -1, -1, -1)


@pytest.mark.parametrize("space", ["projected", "full"])
def test_generator_loss_space_decides_which_columns_get_gradient(space):
    """MRI: the projected loss reaches x_g only through P = R̂Â (the view's k-space columns, a subset of
    the sampled ones M); the full loss compares x_g itself and reaches every column."""
    from rsd_sci.diffusion.model import build_model
    from rsd_sci.distill.distiller import DistillSettings
    from rsd_sci.physics.fourier import fft2c
    from rsd_sci.physics.layout import channels_to_complex

    spec, batch, op, x = _mri_batch([0, 1, 2, 3], h=16, w=32)
    batch = dict(batch, sigma_n=torch.zeros(4))
    network = {"features": (8, 16), "num_res_blocks": 1, "attention_levels": (False, False),
               "num_head_channels": 8, "norm_num_groups": 4}
    torch.manual_seed(0)
    teacher = build_model(spec, network, 0.0)
    fake = build_model(spec, network, 0.0).denoiser
    with torch.no_grad():   # teacher and fake differ, so f_φ − f_ψ carries a signal
        for p, q in zip(teacher.denoiser.parameters(), fake.parameters()):
            p.add_(0.05 * torch.randn_like(p))
            q.add_(0.05 * torch.randn_like(q))
    G = _FixedImage((1, 2, 16, 32))
    d = Distiller(teacher, fake, G, torch.optim.Adam(fake.parameters(), lr=1e-3),
                  torch.optim.SGD(G.parameters(), lr=0.0), DistillSettings(loss_space=space))
    d.generator_step(teacher.family.measure(batch), GeneratorDraws(4, torch.Generator().manual_seed(0)))
    power = fft2c(channels_to_complex(G.image.grad)).abs().square().sum(dim=(0, 1, 2))   # per column (W,)
    sampled = batch["masks"].bool().any(dim=0)   # the columns any sample measures
    outside = float(power[~sampled].sum() / power.sum())
    assert (outside < 1e-6) if space == "projected" else (outside > 0.05), outside


def test_ct_full_loss_compares_only_inside_the_scanned_disc():
    """CT: no view measures the corners outside the scanned disc, so the full-image loss gives them no
    gradient (the teacher's output there is no target), while pixels inside the disc get one."""
    from rsd_sci.diffusion.model import build_model
    from rsd_sci.distill.distiller import DistillSettings
    from rsd_sci.physics.ct import field_of_view

    batch, op, x = _ct_batch([0, 1, 2, 3])
    batch = dict(batch, sigma_n=torch.zeros(4))
    network = {"features": (8, 16), "num_res_blocks": 1, "attention_levels": (False, False),
               "num_head_channels": 8, "norm_num_groups": 4}
    torch.manual_seed(0)
    teacher, fake = build_model(CT_SPEC, network, 0.0), build_model(CT_SPEC, network, 0.0).denoiser
    with torch.no_grad():
        for p, q in zip(teacher.denoiser.parameters(), fake.parameters()):
            p.add_(0.05 * torch.randn_like(p))
            q.add_(0.05 * torch.randn_like(q))
    G = _FixedImage((1, 1, 16, 16))
    d = Distiller(teacher, fake, G, torch.optim.Adam(fake.parameters(), lr=1e-3),
                  torch.optim.SGD(G.parameters(), lr=0.0), DistillSettings(loss_space="full"))
    d.generator_step(teacher.family.measure(batch), GeneratorDraws(4, torch.Generator().manual_seed(0)))
    inside = torch.from_numpy(field_of_view(16))
    grad = G.image.grad[0, 0].abs()
    assert float(grad[~inside].max()) == 0.0 and float(grad[inside].max()) > 0.0


def test_the_measurement_critic_alone_pulls_the_generator_towards_the_data():
    """With the SiD term switched off (g_loss_scale 0), the critic's term alone moves a one-image
    'generator' towards the only image the measurements show: the critic sees real R(y) and synthetic
    R(A x_g + noise) and the generator gets its gradient through A (here image denoising, A = I)."""
    from rsd_sci.diffusion.model import build_model
    from rsd_sci.distill.adversarial import MeasurementCritic
    from rsd_sci.distill.distiller import DistillSettings

    spec = {"family": "image", "shape": [8, 8], "corruption": "noise"}
    network = {"features": (8, 8), "num_res_blocks": 1, "attention_levels": (False, False),
               "num_head_channels": 8, "norm_num_groups": 4}
    torch.manual_seed(0)
    teacher = build_model(spec, network, 0.05)
    truth = -torch.ones(1, 1, 8, 8)
    truth[..., 2:6, 2:6] = 1.0
    gen = torch.Generator().manual_seed(1)
    fake, G = teacher.denoiser, _FixedImage((1, 1, 8, 8))
    critic = MeasurementCritic((1, 8, 8), channels=(8, 16))
    d = Distiller(teacher, fake, G, torch.optim.Adam(fake.parameters(), lr=1e-3, betas=(0.0, 0.999)),
                  torch.optim.Adam(G.parameters(), lr=2e-2, betas=(0.0, 0.999)),
                  DistillSettings(g_loss_scale=0.0, gan_weight=1.0), critic=critic,
                  critic_opt=torch.optim.Adam(critic.parameters(), lr=2e-3, betas=(0.0, 0.999)))
    start = float((G.image.detach() - truth).abs().mean())
    for _ in range(150):
        y = truth.expand(16, -1, -1, -1) + 0.05 * torch.randn(16, 1, 8, 8, generator=gen)
        m = teacher.family.measure({"y": y, "sigma_n": torch.full((16,), 0.05)})
        metrics = d.iteration(m, m, GeneratorDraws(16, gen), GeneratorDraws(16, gen))
    assert {"critic_loss", "g_adversarial"} <= set(metrics)
    assert float((G.image.detach() - truth).abs().mean()) < 0.5 * start
    with pytest.raises(ValueError, match="gan_weight"):
        Distiller(teacher, fake, G, d.fake_opt, d.g_opt, DistillSettings(gan_weight=1.0))


def test_the_aligner_moves_the_generator_through_the_fake_score_and_learns():
    """With the SiD term off (g_loss_scale 0), the aligner's term alone gives the generator a gradient
    (through f_ψ(x_t) and x_t: the fake score is frozen in that update), and the aligner takes its own
    step on the teacher's predictions against the fake score's; no aligner without its weight."""
    from rsd_sci.diffusion.model import build_model
    from rsd_sci.distill import alignment
    from rsd_sci.distill.adversarial import MeasurementCritic
    from rsd_sci.distill.distiller import DistillSettings

    spec = {"family": "image", "shape": [8, 8], "corruption": "noise"}
    network = {"features": (8, 8), "num_res_blocks": 1, "attention_levels": (False, False),
               "num_head_channels": 8, "norm_num_groups": 4}
    torch.manual_seed(0)
    teacher, fake = build_model(spec, network, 0.05), build_model(spec, network, 0.05).denoiser
    G = _FixedImage((1, 1, 8, 8))
    aligner = MeasurementCritic(alignment.input_shape((1, 8, 8)), channels=(8, 16))
    before = [p.detach().clone() for p in aligner.parameters()]
    d = Distiller(teacher, fake, G, torch.optim.Adam(fake.parameters(), lr=1e-3),
                  torch.optim.SGD(G.parameters(), lr=0.0), DistillSettings(g_loss_scale=0.0, adm_weight=1.0),
                  aligner=aligner, aligner_opt=torch.optim.Adam(aligner.parameters(), lr=1e-3))
    m = teacher.family.measure({"y": torch.zeros(4, 1, 8, 8), "sigma_n": torch.full((4,), 0.05)})
    metrics = d.generator_step(m, GeneratorDraws(4, torch.Generator().manual_seed(0)))
    assert metrics["aligner_loss"] > 0 and metrics["g_alignment"] > 0
    assert float(G.image.grad.abs().max()) > 0
    assert any(not torch.equal(p, q) for p, q in zip(aligner.parameters(), before))
    assert all(p.grad is None for p in fake.parameters())
    with pytest.raises(ValueError, match="adm_weight"):
        Distiller(teacher, fake, G, d.fake_opt, d.g_opt, DistillSettings(adm_weight=1.0))
