"""EDM preconditioning: closed-form coefficients, their identities, and the wiring of D around F."""

import math

import pytest
import torch

from rsd_sci.diffusion.networks import MLPBackbone
from rsd_sci.diffusion.precond import EDMDenoiser, edm_coefficients, loss_weight

SD = 0.5   # σ_d


class Zero(torch.nn.Module):
    def forward(self, x_in, c_noise):
        return torch.zeros_like(x_in[:, :1]).expand(-1, 2, *x_in.shape[2:])


class Recorder(torch.nn.Module):
    """Returns the conditioning channel (index 2) for both image channels; keeps its inputs."""

    def forward(self, x_in, c_noise):
        self.x_in, self.c_noise = x_in.clone(), c_noise.clone()
        return x_in[:, 2:3].expand(-1, 2, *x_in.shape[2:])


def test_coefficients_closed_form_at_sigma_data():
    c_skip, c_out, c_in, c_noise = edm_coefficients(torch.tensor([0.5]))
    assert c_skip.item() == pytest.approx(0.5)
    assert c_out.item() == pytest.approx(0.25 / math.sqrt(0.5))
    assert c_in.item() == pytest.approx(1 / math.sqrt(0.5))
    assert c_noise.item() == pytest.approx(math.log(0.5) / 4)
    assert loss_weight(torch.tensor([0.5])).item() == pytest.approx(8.0)
    assert loss_weight(torch.tensor([1.0])).item() == pytest.approx(5.0)


def test_coefficient_identities():
    """Unit-variance input and target: c_in²(σ² + σ_d²) = 1, (1 − c_skip)²σ_d² + c_skip²σ² = c_out² = 1/λ."""
    s = torch.logspace(-3, 2, 40, dtype=torch.float64)
    c_skip, c_out, c_in, c_noise = edm_coefficients(s)
    torch.testing.assert_close(c_in ** 2 * (s ** 2 + SD ** 2), torch.ones_like(s))
    torch.testing.assert_close((1 - c_skip) ** 2 * SD ** 2 + c_skip ** 2 * s ** 2, c_out ** 2)
    torch.testing.assert_close(loss_weight(s) * c_out ** 2, torch.ones_like(s))
    torch.testing.assert_close(torch.exp(4 * c_noise), s)


def test_zero_backbone_gives_c_skip_x():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 5, 5, generator=g)
    sigma = torch.tensor([0.01, 0.5, 20.0])
    out = EDMDenoiser(Zero())(x, sigma)
    expected = x * (0.25 / (sigma ** 2 + 0.25)).view(3, 1, 1, 1)
    torch.testing.assert_close(out, expected)


def test_cond_is_concatenated_unscaled_after_c_in_x():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 2, 4, 6, generator=g)
    cond = torch.randn(2, 1, 4, 6, generator=g)
    sigma = torch.tensor([0.3, 3.0])
    rec = Recorder()
    out = EDMDenoiser(rec)(x, sigma, cond)
    s = sigma.view(2, 1, 1, 1)
    torch.testing.assert_close(rec.x_in[:, :2], x / torch.sqrt(s ** 2 + 0.25))
    torch.testing.assert_close(rec.x_in[:, 2:], cond)
    torch.testing.assert_close(rec.c_noise, torch.log(sigma) / 4)
    expected = 0.25 / (s ** 2 + 0.25) * x + s * 0.5 / torch.sqrt(s ** 2 + 0.25) * cond
    torch.testing.assert_close(out, expected)


def test_ideal_backbone_gives_the_gaussian_posterior_mean():
    """Data N(0, s²) per entry: the optimal denoiser is s²/(s² + σ²)·x. A backbone that returns the ideal
    F (derived by hand from the parametrisation) must make D equal it for every σ."""
    s2 = 1.3 ** 2

    class Ideal(torch.nn.Module):
        def forward(self, x_in, c_noise):
            sig = torch.exp(4 * c_noise).view(-1, 1, 1, 1)
            x = x_in * torch.sqrt(sig ** 2 + 0.25)                  # undo c_in
            d_opt = s2 / (s2 + sig ** 2) * x
            skip = 0.25 / (sig ** 2 + 0.25)
            out = sig * 0.5 / torch.sqrt(sig ** 2 + 0.25)
            return (d_opt - skip * x) / out

    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 1, 3, 3, generator=g, dtype=torch.float64)
    sigma = torch.tensor([0.002, 0.2, 2.0, 80.0])
    out = EDMDenoiser(Ideal())(x, sigma)
    expected = s2 / (s2 + sigma.double().view(4, 1, 1, 1) ** 2) * x
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


def test_sigma_as_float_scalar_tensor_or_batch():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 4, 4, generator=g)
    D = EDMDenoiser(Zero())
    a = D(x, 0.7)
    torch.testing.assert_close(a, D(x, torch.tensor(0.7)))
    torch.testing.assert_close(a, D(x, torch.full((3,), 0.7)))
    with pytest.raises(ValueError):
        D(x, torch.ones(2))


def test_vector_data_with_mlp_backbone():
    """(B, D) data: the MLP's output layer starts at zero, so D = c_skip·x and the shape is kept."""
    torch.manual_seed(0)
    D = EDMDenoiser(MLPBackbone(4, hidden=16, depth=2, cond_dim=2))
    x, cond = torch.randn(5, 4), torch.randn(5, 2)
    sigma = torch.linspace(0.1, 2.0, 5)
    out = D(x, sigma, cond)
    assert out.shape == (5, 4)
    torch.testing.assert_close(out, x * (0.25 / (sigma ** 2 + 0.25))[:, None])
    assert loss_weight(torch.tensor([0.5]), D.sigma_data).item() == pytest.approx(8.0)
