"""The teacher's loss family: hand-computed values, the Tweedie conversion, measurement-domain identities."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rsd_sci.diffusion.losses import (ambient_denoiser, ambient_input, ambient_loss, loss_weight, plain_loss,
                                      sample_sigma, teacher_loss, tweedie_convert, tweedie_loss)
from rsd_sci.measurement import Measurement, family_of
from rsd_sci.physics.coil_maps import birdcage_maps
from rsd_sci.physics.ct import ramp_filter, view_mask
from rsd_sci.physics.inpaint import PixelMask, bernoulli_mask
from rsd_sci.physics.layout import complex_to_channels
from rsd_sci.physics.masks import MaskSpec
from rsd_sci.physics.mri import MRIOperator

NOISE_SPEC = {"family": "image", "shape": [2, 2], "corruption": "noise"}
PIX_SPEC = {"family": "image", "shape": [2, 2], "corruption": "inpaint", "p": 0.5, "delta": 0.1}
CT_SPEC = {"family": "ct", "image_size": 16, "n_angles": 30, "n_views": 10, "view_kind": "sparse"}
MRI_SPEC = {"family": "mri", "shape": [8, 16], "coils": 1, "mask": {"kind": "random", "acceleration": 4}}

Y = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
N = torch.tensor([[[[1.0, 0.0], [0.0, -1.0]]]])


def measure(spec, batch) -> Measurement:
    return family_of(spec).measure(batch)


def half(x, sigma, cond=None):
    """A linear toy denoiser D(x) = x / 2."""
    return 0.5 * x


class ConvDenoiser(nn.Module):
    """A tiny trainable D(x, σ, cond) = conv([x, cond]) + x/(1 + σ²): batched, differentiable, any family."""

    def __init__(self, channels, cond_channels):
        super().__init__()
        self.conv = nn.Conv2d(channels + cond_channels, channels, 3, padding=1)

    def forward(self, x, sigma, cond=None):
        inp = x if cond is None else torch.cat([x, cond.to(x.dtype)], dim=1)
        s = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, 1, 1, 1)
        return self.conv(inp) + x / (1 + s**2)


# -- σ and λ ---------------------------------------------------------------------------------------------------
def test_sample_sigma_and_weight():
    normal = torch.tensor([0.0, 1.0, -2.0])
    assert torch.allclose(sample_sigma(normal), torch.exp(-1.2 + 1.2 * normal))
    assert torch.allclose(sample_sigma(normal, P_mean=0.0, P_std=1.0), torch.exp(normal))
    sigma = torch.tensor([0.5, 1.0, 2.0])
    assert torch.allclose(loss_weight(sigma), (sigma**2 + 0.25) / (sigma * 0.5) ** 2)
    assert float(loss_weight(torch.tensor(1.0))) == pytest.approx(5.0)


# -- member 1 ----------------------------------------------------------------------------------------------------
def test_plain_loss_by_hand():
    got = plain_loss(half, measure(NOISE_SPEC, {"y": Y}), torch.tensor([1.0]), N)
    # x_t = [[2, 2], [3, 3]], D = [[1, 1], [1.5, 1.5]], D − y = [[0, −1], [−1.5, −2.5]]: mean square 9.5/4
    assert torch.allclose(got, torch.tensor([5.0 * 9.5 / 4]))


# -- member 2 ----------------------------------------------------------------------------------------------------
def test_tweedie_loss_by_hand():
    sigma, sigma_n = 1.0, 0.6
    m = measure(NOISE_SPEC, {"y": Y, "sigma_n": torch.tensor([sigma_n])})
    got = tweedie_loss(half, m, torch.tensor([sigma]), N)
    x_t = Y + math.sqrt(sigma**2 - sigma_n**2) * N
    ratio = sigma_n**2 / sigma**2
    d_y = (1 - ratio) * (0.5 * x_t) + ratio * x_t
    expected = (sigma**2 + 0.25) / (sigma * 0.5) ** 2 * ((d_y - Y) ** 2).mean()
    assert torch.allclose(got, expected.reshape(1))
    assert float(got) == pytest.approx(5 * (0.224**2 + 0.64**2 + 0.96**2 + 1.824**2) / 4, rel=1e-6)


def test_tweedie_clamped_samples_carry_no_loss_and_no_gradient():
    scale = nn.Parameter(torch.tensor(0.3))
    m = measure(NOISE_SPEC, {"y": Y.repeat(2, 1, 1, 1), "sigma_n": torch.tensor([0.6, 0.6])})
    loss = tweedie_loss(lambda x, s, c=None: scale * x, m, torch.tensor([0.1, 0.6]), N.repeat(2, 1, 1, 1))
    assert torch.equal(loss, torch.zeros(2))
    loss.sum().backward()
    assert float(scale.grad) == 0.0


def test_tweedie_without_noise_is_the_plain_loss():
    m = measure(NOISE_SPEC, {"y": Y, "sigma_n": torch.zeros(1)})
    sigma = torch.tensor([0.7])
    assert torch.allclose(tweedie_loss(half, m, sigma, N), plain_loss(half, m, sigma, N))


def test_tweedie_conversion_of_the_clean_gaussian_denoiser_is_e_y_given_x_t():
    """x ~ N(0, s²), y = x + σ_n ε, x_t = y + √(σ² − σ_n²) n. With the CLEAN optimal denoiser
    x̂0 = s²/(s² + σ²)·x_t, D_y = (s² + σ_n²)/(s² + σ²)·x_t = E[y | x_t]:
    (1 − σ_n²/σ²)·s²/(s²+σ²) + σ_n²/σ²
        = (σ² s² − σ_n² s² + σ_n² s² + σ_n² σ²)/(σ²(s²+σ²)) = (s² + σ_n²)/(s² + σ²)."""
    s2, sigma_n, sigma = 0.8, 0.4, 0.9
    x_t = torch.linspace(-3, 3, 7).reshape(1, 1, 1, 7)
    d_y = tweedie_convert(s2 / (s2 + sigma**2) * x_t, x_t, torch.tensor([sigma]), torch.tensor([sigma_n]))
    assert torch.allclose(d_y, (s2 + sigma_n**2) / (s2 + sigma**2) * x_t, atol=1e-6)
    # numerically: regress y on x_t from samples
    g = torch.Generator().manual_seed(0)
    n = 400_000
    y = (math.sqrt(s2) * torch.randn(n, generator=g, dtype=torch.float64)
         + sigma_n * torch.randn(n, generator=g, dtype=torch.float64))
    xt = y + math.sqrt(sigma**2 - sigma_n**2) * torch.randn(n, generator=g, dtype=torch.float64)
    slope = float((xt * y).sum() / (xt * xt).sum())
    assert slope == pytest.approx((s2 + sigma_n**2) / (s2 + sigma**2), abs=5e-3)


def test_tweedie_loss_is_minimised_by_the_clean_denoiser():
    """Among linear denoisers c·x_t the Tweedie loss on NOISY data is minimised at the CLEAN c = s²/(s²+σ²)."""
    s2, sigma_n, sigma, n, dim = 0.5, 0.5, 0.8, 60_000, 4
    g = torch.Generator().manual_seed(1)
    y = (math.sqrt(s2) * torch.randn(n, 1, 1, dim, generator=g) + sigma_n * torch.randn(n, 1, 1, dim, generator=g))
    noise = torch.randn(n, 1, 1, dim, generator=g)
    m = measure(NOISE_SPEC, {"y": y, "sigma_n": torch.full((n,), sigma_n)})

    def loss(c):
        return float(tweedie_loss(lambda x, s, cond=None: c * x, m, sigma, noise).mean())

    c = np.array([0.0, 0.5, 1.0])  # the loss is exactly quadratic in c: its vertex from three values
    a, b, _ = np.polyfit(c, [loss(v) for v in c], 2)
    assert -b / (2 * a) == pytest.approx(s2 / (s2 + sigma**2), abs=0.02)


# -- members 3 and 4 -------------------------------------------------------------------------------------------------
def test_ambient_pixel_loss_by_hand():
    m = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    m_hat = torch.tensor([[[[1.0, 0.0], [1.0, 0.0]]]])
    batch = {"masks": m, "index": torch.tensor([0]), "y": m * Y}
    meas = measure(PIX_SPEC, batch)
    meas_hat = meas.measure(batch, PixelMask(m_hat))
    sigma = 2.0
    got = ambient_loss(lambda x, s, cond: 0.5 * x + cond, meas, meas_hat, torch.tensor([sigma]), N)
    x_in = m_hat * (m * Y + sigma * N)             # [[3, 0], [3, 0]]
    d = 0.5 * x_in + m_hat                         # [[2.5, 0], [2.5, 0]]
    expected = (sigma**2 + 0.25) / (sigma * 0.5) ** 2 * (m * (d - m * Y)).square().sum() / m.sum()
    assert torch.allclose(got, expected.reshape(1))
    assert float(got) == pytest.approx(4.25 * (1.5**2 + 2**2 + 0.5**2) / 3)


def _linear_channel_mixer(x, sigma, cond=None):
    """A linear D that mixes the two channels and depends on σ (cond ignored)."""
    s = torch.as_tensor(sigma).reshape(-1, 1, 1, 1)
    return 0.6 * x + 0.2 * x.flip(1) / (1 + s) + 0.1 * x.roll(1, dims=-1)


def test_ambient_mri_full_mask_equals_the_plain_loss_on_the_image():
    g = torch.Generator().manual_seed(2)
    x = torch.complex(torch.randn(3, 1, 8, 16, generator=g), torch.randn(3, 1, 8, 16, generator=g))
    op = MRIOperator(torch.ones(3, 1, 1, 16))
    batch = {"y": op.A(x), "index": torch.arange(3)}
    noise = torch.randn(3, 2, 8, 16, generator=g)
    sigma = torch.tensor([0.3, 1.0, 4.0])
    m = family_of(MRI_SPEC).measure(batch, op)
    ambient = ambient_loss(_linear_channel_mixer, m, m, sigma, noise)
    plain = plain_loss(_linear_channel_mixer, measure(NOISE_SPEC, {"y": complex_to_channels(x)}), sigma, noise)
    assert torch.allclose(ambient, plain, rtol=1e-5)
    # the complex image-layout noise gives the same loss
    complex_noise = torch.complex(noise[:, :1], noise[:, 1:])
    assert torch.allclose(ambient_loss(_linear_channel_mixer, m, m, sigma, complex_noise), ambient)


def test_ambient_ct_loss_by_composition():
    masks = torch.from_numpy(np.stack([view_mask(30, 10), np.roll(view_mask(30, 10), 1)]))
    batch = {"masks": masks, "index": torch.tensor([0, 1])}
    op = family_of(CT_SPEC).operator(batch)
    g = torch.Generator().manual_seed(3)
    batch["y"] = op.A(torch.randn(2, 1, 16, 16, generator=g))
    m = measure(CT_SPEC, batch)
    m_hat = m.further(seed=0)
    op_hat = m_hat.op
    noise, sigma = torch.randn(2, 1, 16, 16, generator=g), torch.tensor([0.5, 2.0])
    got = ambient_loss(half, m, m_hat, sigma, noise)
    x_in = op_hat.fbp(batch["y"]) + sigma.reshape(-1, 1, 1, 1) * op_hat.fbp(op_hat.A(noise))
    r = op.A(0.5 * x_in) - batch["y"]
    expected = loss_weight(sigma) * ramp_filter(r).square().flatten(1).sum(1) / (10 * 16)
    assert torch.allclose(got, expected, rtol=1e-5)


def _family(name):
    """The batch of 2 of each ambient family as a `Measurement`."""
    if name == "pixel":
        spec = dict(PIX_SPEC, shape=[8, 8])
        masks = bernoulli_mask((2, 1, 8, 8), 0.5, torch.Generator().manual_seed(0))
        batch = {"masks": masks, "index": torch.tensor([0, 1])}
        x = torch.randn(2, 1, 8, 8)
    elif name == "ct":
        spec = CT_SPEC
        batch = {"masks": torch.from_numpy(np.stack([view_mask(30, 10)] * 2)), "index": torch.tensor([0, 1])}
        x = torch.randn(2, 1, 16, 16)
    else:
        coils = 3 if name == "mri_multi" else 1
        spec = dict(MRI_SPEC, coils=coils)
        made = [MaskSpec("random", 4, 0.15).make((8, 16), seed=i) for i in range(2)]
        batch = {"masks": torch.from_numpy(np.stack([m.mask for m in made])),
                 "centers": torch.from_numpy(np.stack([m.center for m in made])), "index": torch.tensor([0, 1])}
        if coils > 1:
            batch["coil_maps"] = torch.from_numpy(birdcage_maps(coils, 8, 16))[None].repeat(2, 1, 1, 1)
        x = torch.complex(torch.randn(2, 1, 8, 16), torch.randn(2, 1, 8, 16))
    batch["y"] = family_of(spec).operator(batch).A(x)
    batch["sigma_n"] = torch.zeros(2)
    return measure(spec, batch)


@pytest.mark.parametrize("name", ["pixel", "ct", "mri_single", "mri_multi"])
def test_ambient_loss_is_batched_differentiable_and_float32_under_autocast(name):
    torch.manual_seed(0)
    m = _family(name)
    m_hat = m.further(seed=0)
    D = ConvDenoiser(m.channels, m.cond_channels)
    noise = torch.randn(m.noise_shape())
    sigma = torch.tensor([0.5, 3.0])
    loss = teacher_loss("ambient", D, m, sigma, noise, m_hat=m_hat)
    assert loss.shape == (2,) and bool(torch.isfinite(loss).all())
    loss.mean().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in D.parameters())
    # per-sample: the batch loss is the loss of each sample alone (with its own operator rows)
    first = m.measure({k: v[:1] for k, v in m.batch.items()})
    alone = ambient_loss(D, first, first.further(seed=0), sigma[:1], noise[:1])
    assert torch.allclose(alone, loss[:1].detach(), rtol=1e-4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = ambient_loss(D, m, m_hat, sigma, noise)
    assert low.dtype == torch.float32 and bool(torch.isfinite(low).all())


def test_teacher_loss_dispatch_and_errors():
    m = measure(NOISE_SPEC, {"y": Y, "sigma_n": torch.tensor([0.2])})
    sigma = torch.tensor([1.0])
    assert torch.equal(teacher_loss("plain", half, m, sigma, N), plain_loss(half, m, sigma, N))
    assert torch.equal(teacher_loss("tweedie", half, m, sigma, N), tweedie_loss(half, m, sigma, N))
    with pytest.raises(ValueError, match="further operator"):
        teacher_loss("ambient", half, m, sigma, N)
    with pytest.raises(ValueError, match="unknown loss member"):
        teacher_loss("score", half, m, sigma, N)


@pytest.mark.parametrize("spec, sigma_n, member", [
    ({"family": "mri"}, 0.1, "ambient"),
    ({"family": "ct"}, 0.0, "ambient"),
    ({"family": "image", "corruption": "inpaint"}, 0.1, "ambient"),
    ({"family": "image", "corruption": "noise"}, 0.2, "tweedie"),
    ({"family": "image", "corruption": "blur"}, 0.0, "plain"),
    ({"family": "image", "corruption": "blur"}, torch.tensor([0.0, 0.1]), "tweedie"),
    ({"family": "image", "corruption": "downsample"}, torch.zeros(3), "plain"),
    ({"family": "image", "corruption": "downsample"}, 0.05, "tweedie"),
])
def test_the_family_chooses_the_member(spec, sigma_n, member):
    assert family_of(spec).member(sigma_n) == member


def test_ambient_denoiser_sees_the_projected_iterate():
    m = _family("mri_multi")
    m_hat = m.further(seed=0)
    cond = m_hat.cond()
    seen = {}

    def D(x, sigma, c):
        seen["x"], seen["c"] = x, c
        return 2 * x

    denoise = ambient_denoiser(D, m_hat)
    x = torch.randn(2, 2, 8, 16)
    out = denoise(x, torch.tensor([1.0, 1.0]))
    assert torch.allclose(seen["x"], m_hat.project(m.to_image(x))) and torch.equal(seen["c"], cond)
    assert torch.allclose(out, 2 * seen["x"])
    # the input of a noisy iterate x + σ n equals the training input built from y = A x
    g = torch.Generator().manual_seed(4)
    x_img = torch.complex(torch.randn(2, 1, 8, 16, generator=g), torch.randn(2, 1, 8, 16, generator=g))
    n = torch.randn(2, 2, 8, 16, generator=g)
    sigma = torch.tensor([0.4, 0.4])
    train = ambient_input(m_hat.with_y(m.A(x_img)), sigma, n)
    denoise(m.to_channels(x_img) + 0.4 * n, sigma)
    assert torch.allclose(seen["x"], train, atol=1e-5)


def test_vector_data_with_pixel_masks_and_the_edm_denoiser():
    """Vectors (B, D) (the theory check): masks (B, D), cond M̂ (B, D), an EDMDenoiser around a linear map."""
    from rsd_sci.diffusion.precond import EDMDenoiser

    class Linear(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.lin = nn.Linear(2 * dim, dim)

        def forward(self, x_in, c_noise):
            return self.lin(x_in)

    dim = 16
    spec = {"family": "image", "shape": [dim], "corruption": "inpaint", "p": 0.4, "delta": 0.1}
    masks = bernoulli_mask((4, dim), 0.4, torch.Generator().manual_seed(0))
    batch = {"masks": masks, "index": torch.arange(4)}
    batch["y"] = family_of(spec).operator(batch).A(torch.randn(4, dim))
    m = measure(spec, batch)
    m_hat = m.further(seed=0)
    op_hat = m_hat.op
    assert m_hat.cond().shape == (4, dim) and bool((op_hat.mask <= masks).all())
    D = EDMDenoiser(Linear(dim))
    sigma = sample_sigma(torch.randn(4))
    loss = ambient_loss(D, m, m_hat, sigma, torch.randn(m.noise_shape()))
    assert loss.shape == (4,) and bool(torch.isfinite(loss).all())
    loss.mean().backward()
    assert D.backbone.lin.weight.grad is not None
    # without a weight change the loss is λ(σ)·‖M ⊙ (c_skip·x_in + c_out·F − y)‖²/|M| with F ≡ 0
    nn.init.zeros_(D.backbone.lin.weight), nn.init.zeros_(D.backbone.lin.bias)
    n = torch.randn(4, dim)
    x_in = op_hat.mask * (batch["y"] + sigma[:, None] * n)
    d = 0.25 / (sigma[:, None] ** 2 + 0.25) * x_in
    expected = loss_weight(sigma) * (masks * (d - batch["y"])).square().sum(1) / masks.sum(1)
    assert torch.allclose(ambient_loss(D, m, m_hat, sigma, n).detach(), expected, rtol=1e-5)
