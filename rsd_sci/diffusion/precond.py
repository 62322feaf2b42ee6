"""EDM preconditioning (Karras et al. 2022, Table 1) and its loss weight, kept together so they cannot drift.

A backbone F is wrapped into a denoiser D that returns an x0-prediction:

    D(x, σ, c) = c_skip(σ)·x + c_out(σ)·F([c_in(σ)·x, c], c_noise(σ))

    c_skip  = σ_d² / (σ² + σ_d²)
    c_out   = σ·σ_d / √(σ² + σ_d²)
    c_in    = 1 / √(σ² + σ_d²)
    c_noise = ln(σ) / 4
    λ(σ)    = (σ² + σ_d²) / (σ·σ_d)² = 1 / c_out²          (the training loss weight)

with σ_d = 0.5 (clean data roughly in [-1, 1]). The choice makes the network input c_in·(y + σ n) and the
effective training target (y − c_skip·(y + σ n)) / c_out both unit-variance when y has variance σ_d²:
    c_in²·(σ_d² + σ²) = 1   and   (1 − c_skip)²·σ_d² + c_skip²·σ² = c_out².
Conditioning channels c (masks, a channel of ones) are concatenated UNSCALED after c_in·x.

Shapes: x (B, C, ...) real (an image (B, C, H, W) or a vector (B, D)); σ a float or (B,); c (B, Cc, ...) or
None; the backbone maps (B, C + Cc, ...) and c_noise (B,) to (B, C, ...).

Example:
    >>> import torch
    >>> class Zero(torch.nn.Module):
    ...     def forward(self, x_in, c_noise):
    ...         return torch.zeros_like(x_in)
    >>> D = EDMDenoiser(Zero())
    >>> x = torch.ones(2, 1, 4, 4)
    >>> D(x, 0.5)[0, 0, 0, 0].item()    # F ≡ 0 leaves c_skip·x = 0.25/(0.25+0.25)
    0.5
    >>> loss_weight(torch.tensor([0.5])).item()    # (0.25 + 0.25) / 0.0625
    8.0
"""

from __future__ import annotations

import torch
from torch import nn

from rsd_sci.physics.broadcast import per_sample

SIGMA_DATA = 0.5   # σ_d: standard deviation of the clean data the preconditioning assumes


def batch_sigma(sigma: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """σ as a (B,) float32 tensor on x's device: a float, a 0-d tensor or a (B,) tensor."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=x.device)
    if s.ndim == 0:
        return s.expand(x.shape[0])
    if s.shape != (x.shape[0],):
        raise ValueError(f"sigma must be a float or of shape ({x.shape[0]},), got {tuple(s.shape)}")
    return s


def edm_coefficients(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c_skip, c_out, c_in, c_noise), each of sigma's shape (see the module docstring)."""
    s2 = sigma.square() + sigma_data ** 2
    c_skip = sigma_data ** 2 / s2
    c_out = sigma * sigma_data / s2.sqrt()
    c_in = 1.0 / s2.sqrt()
    c_noise = sigma.log() / 4
    return c_skip, c_out, c_in, c_noise


def loss_weight(sigma: torch.Tensor, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """λ(σ) = (σ² + σ_d²) / (σ·σ_d)² = 1/c_out², of sigma's shape."""
    return (sigma.square() + sigma_data ** 2) / (sigma * sigma_data).square()


class EDMDenoiser(nn.Module):
    """D(x, σ, cond) -> x0 around a backbone F(x_in, c_noise); see the module docstring.

    Args:
        backbone: module with forward(x_in (B, C + Cc, ...), c_noise (B,)) -> (B, C, ...)
            (`rsd_sci.diffusion.networks.build_backbone` or `MLPBackbone`).
        sigma_data: σ_d of the clean data.
    """

    def __init__(self, backbone: nn.Module, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.backbone = backbone
        self.sigma_data = float(sigma_data)

    def forward(self, x: torch.Tensor, sigma: float | torch.Tensor,
                cond: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, C, ...), σ float or (B,), cond (B, Cc, ...) or None -> x0 (B, C, ...) in x's dtype."""
        s = batch_sigma(sigma, x)
        c_skip, c_out, c_in, c_noise = (per_sample(c, x) for c in edm_coefficients(s, self.sigma_data))
        x_in = c_in * x
        if cond is not None:
            x_in = torch.cat([x_in, cond.to(x_in.dtype)], dim=1)
        f = self.backbone(x_in, c_noise.flatten())
        return (c_skip * x + c_out * f.to(x.dtype)).to(x.dtype)
