"""Noise models: Gaussian moments (real, complex per component, per sample) and Poisson vs the delta method."""

from __future__ import annotations

import math

import pytest
import torch

from rsd_sci.physics.noise import GaussianNoise, PoissonNoise, gaussian_noise_like

N = 200_000  # samples per moment check: relative standard error of a variance ≈ sqrt(2/N) = 0.3 %


def _g(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_real_moments_and_reproducibility():
    y = torch.full((2, N), 3.0)
    out = GaussianNoise(0.2)(y, generator=_g())
    n = out - 3.0
    assert abs(float(n.mean())) < 4 * 0.2 / math.sqrt(2 * N)
    assert float(n.std()) == pytest.approx(0.2, rel=0.01)
    assert torch.equal(out, GaussianNoise(0.2)(y, generator=_g()))
    assert not torch.equal(out, GaussianNoise(0.2)(y, generator=_g(1)))
    assert torch.equal(GaussianNoise(0.0)(y), y)


def test_complex_sigma_is_per_real_component():
    y = torch.zeros(N, dtype=torch.complex64)
    n = GaussianNoise(0.5)(y, generator=_g())
    assert n.dtype == torch.complex64
    assert float(n.real.std()) == pytest.approx(0.5, rel=0.01)
    assert float(n.imag.std()) == pytest.approx(0.5, rel=0.01)
    assert abs(float((n.real * n.imag).mean())) < 4 * 0.25 / math.sqrt(N)  # independent parts
    assert float((n.abs() ** 2).mean()) == pytest.approx(2 * 0.25, rel=0.01)  # E|n|² = 2σ²


def test_per_sample_sigma_broadcasts():
    sigma = torch.tensor([0.0, 0.1, 1.0])
    y = torch.zeros(3, 1, 200, 200, dtype=torch.float64)
    n = GaussianNoise(sigma)(y, generator=_g())
    assert n.dtype == torch.float64 and torch.equal(n[0], y[0])
    for b in (1, 2):
        assert float(n[b].std()) == pytest.approx(float(sigma[b]), rel=0.02)
    pure = gaussian_noise_like(y, sigma, _g(3))  # the noise alone, same draws as through the module
    torch.testing.assert_close(GaussianNoise(sigma)(y, generator=_g(3)), y + pure)
    with pytest.raises(ValueError):
        GaussianNoise(torch.tensor([0.1, 0.2]))(y)
    with pytest.raises(ValueError):
        GaussianNoise(-1.0)


@pytest.mark.parametrize("line_integral,photons,mu", [(0.5, 1e4, 1.0), (4.0, 1e5, 1.0), (2.0, 2e4, 0.5)])
def test_poisson_moments_follow_the_delta_method(line_integral, photons, mu):
    y = torch.full((N,), line_integral, dtype=torch.float64)
    out = PoissonNoise(photons, mu)(y, generator=_g())
    expected_counts = photons * math.exp(-mu * line_integral)
    var = 1.0 / expected_counts / mu**2  # Var[-log(C/I0)/μ] ≈ 1/E[C]/μ²
    bias = 0.5 / expected_counts / mu  # E[-log C] ≈ -log E[C] + 1/(2 E[C])
    assert float(out.var()) == pytest.approx(var, rel=0.03)
    assert float(out.mean()) == pytest.approx(line_integral + bias, abs=5 * math.sqrt(var / N))


def test_poisson_clamp_per_sample_and_gradient():
    y = torch.tensor([[60.0], [0.0]], requires_grad=True)
    noise = PoissonNoise(torch.tensor([100.0, 1e6]))
    out = noise(y, generator=_g())
    values = out.detach()
    assert float(values[0, 0]) == pytest.approx(math.log(100.0))  # zero counts clamped to one: log(I0)/μ
    assert abs(float(values[1, 0])) < 5e-3  # 1e6 photons, no attenuation: ~1e-3 noise
    out.sum().backward()
    assert torch.equal(y.grad, torch.ones_like(y))  # straight through, like additive noise
    with pytest.raises(ValueError):
        PoissonNoise(0.0)
    with pytest.raises(ValueError):
        PoissonNoise(1e4)(torch.zeros(2, dtype=torch.complex64))


def test_autocast_noise_in_float32():
    y = torch.zeros(4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert GaussianNoise(0.1)(y).dtype == torch.float32
        assert PoissonNoise()(y).dtype == torch.float32
