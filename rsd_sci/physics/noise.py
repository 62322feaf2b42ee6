"""Measurement noise models: additive Gaussian (σ per real component) and Poisson photon noise for CT.

Gaussian: y_noisy = y + σ·n, n ~ N(0, I); for complex y, n = n_re + i·n_im with both N(0, 1), so σ is
the standard deviation of EACH real component (docs/method.md). σ is a scalar or one value per sample (B,),
broadcast over the non-batch dimensions.

Poisson (CT line integrals after the log): with I0 photons per ray and attenuation scale μ,
    counts ~ Poisson(I0 · exp(−μ·y)),    y_noisy = −log(max(counts, 1) / I0) / μ.
A ray with zero counts is clamped to one count (y_noisy ≤ log(I0)/μ, finite). By the delta method,
E[y_noisy] ≈ y + 1/(2·I0·e^{−μy})/μ and Var[y_noisy] ≈ 1/(I0·e^{−μy})/μ² for large counts.
Gradients pass straight through (∂y_noisy/∂y = I, like additive noise).

Noise models are not operators: pair them with one in `Corruption(operator, noise)`. They add noise to
every entry they are given, zero rows of a view- or line-masked measurement included; multiply by the
row mask afterwards where unmeasured rows must stay zero.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> y = GaussianNoise(0.1)(torch.zeros(4096), generator=g)
    >>> 0.09 < float(y.std()) < 0.11
    True
"""

from __future__ import annotations

import torch
from torch import nn

from rsd_sci.physics.broadcast import per_sample
from rsd_sci.physics.precision import promote, real_dtype_of



def _per_sample(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A scalar stays a scalar; a (B,) tensor becomes (B, 1, …, 1) to broadcast against `like`."""
    if value.dim() == 0:
        return value
    if value.dim() != 1 or value.shape[0] not in (1, like.shape[0]):
        raise ValueError(f"per-sample values must be (B,) with B = {like.shape[0]}, got {tuple(value.shape)}")
    return per_sample(value, like)


def gaussian_noise_like(y: torch.Tensor, sigma: float | torch.Tensor,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """σ·n with n standard normal of y's shape (complex: independent N(0, 1) real and imaginary parts).

    sigma: scalar or (B,) per sample. Returned in y's physics precision on y's device.
    """
    y = promote(y)
    real = real_dtype_of(y.dtype)
    sigma = _per_sample(torch.as_tensor(sigma, dtype=real, device=y.device), y)
    if y.is_complex():
        n = torch.randn((*y.shape, 2), generator=generator, device=y.device, dtype=real)
        n = torch.view_as_complex(n)
    else:
        n = torch.randn(y.shape, generator=generator, device=y.device, dtype=real)
    return sigma * n


class GaussianNoise(nn.Module):
    """y ↦ y + σ·n (σ per real component).

    Args:
        sigma: standard deviation, a float or a (B,) tensor of per-sample values (≥ 0).
    """

    def __init__(self, sigma: float | torch.Tensor):
        super().__init__()
        sigma = torch.as_tensor(sigma, dtype=torch.float32)
        if sigma.dim() > 1 or bool((sigma < 0).any()):
            raise ValueError("sigma must be a non-negative scalar or (B,) tensor")
        self.register_buffer("sigma", sigma)

    def forward(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.autocast(device_type=y.device.type, enabled=False):
            y = promote(y)
            return y + gaussian_noise_like(y, self.sigma, generator)


class PoissonNoise(nn.Module):
    """Photon-counting noise on CT line integrals (post-log), see the module docstring.

    Args:
        photons: incident photons per ray I0 (> 0), a float or (B,) per sample.  # 1e5 ≈ low-dose CT
        mu_scale: μ, the attenuation per unit of y (line integrals in other units than the counts' log).
    """

    def __init__(self, photons: float | torch.Tensor = 1e5, mu_scale: float = 1.0):
        super().__init__()
        photons = torch.as_tensor(photons, dtype=torch.float64)
        if photons.dim() > 1 or bool((photons <= 0).any()):
            raise ValueError("photons must be a positive scalar or (B,) tensor")
        if not mu_scale > 0:
            raise ValueError(f"mu_scale must be positive, got {mu_scale}")
        self.register_buffer("photons", photons)
        self.mu_scale = float(mu_scale)

    def forward(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        with torch.autocast(device_type=y.device.type, enabled=False):
            y = promote(y)
            if y.is_complex():
                raise ValueError("Poisson noise applies to real line integrals, got a complex tensor")
            photons = _per_sample(self.photons.to(device=y.device, dtype=y.dtype), y)
            rate = photons * torch.exp(-self.mu_scale * y.detach())
            counts = torch.poisson(rate, generator=generator)
            noisy = -torch.log(counts.clamp_min(1.0) / photons) / self.mu_scale
            return y + (noisy - y.detach())
