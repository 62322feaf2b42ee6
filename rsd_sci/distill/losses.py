"""The distillation losses (docs/method.md, Phase 2): Score identity Distillation with the operator in the loop.

Networks: the frozen teacher f_φ, the fake score f_ψ, the generator G_θ, all D(x, σ, cond) -> x0 in the
teacher's network space (`rsd_sci.measurement`), which also supplies P, the teacher's view of a clean
image (P = A for data-space teachers, R̂·Â with a fresh further operator for Ambient ones).

    x_g   = G(z_in, σ_init, c)            z_in = σ_init·z in the teacher's input format (m.generator_input)
    fake score:  ỹ = A(x_g) + σ_n·n       on a fresh operator draw, trained with the teacher's loss member
    generator:   t ~ U[0, t_max/1000],  σ_t = (σ_max^(1/ρ) + (1 − t)(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ
                 u = P(x_g),  x_t = P(x_g + σ_t ε)  (data space: u + σ_t ε)
                 w = stopgrad(mean |u − P(f_φ)|) ≥ 1e-5
                 L_G = Σ_pixels P(f_φ − f_ψ) ⊙ [P(f_φ) − u − α·P(f_φ − f_ψ)] / w

L_G expands to (f_φ − f_ψ)ᵀ(f_ψ − u) + (1 − α)‖f_φ − f_ψ‖² (SiD), with every term seen through P, so
only the measured subspace of the teacher is compared. Gradients reach θ through u and through x_t
inside both networks. Shapes: network channels (B, C, H, W) (or (B, D) vectors); losses (B,).

Example:
    >>> import torch
    >>> f = torch.ones(1, 4)
    >>> float(generator_loss(f, f, torch.zeros(1, 4), lambda g: g, alpha=ALPHA)[0])  # f_φ = f_ψ: no signal
    0.0
"""

from __future__ import annotations

from typing import Callable

import torch

from rsd_sci.physics.broadcast import per_sample
from rsd_sci.physics.precision import promote

T_MAX = 800          # t ~ U[0, t_max/1000] (published)
SIGMA_INIT = 2.5     # the generator's input noise level (published)
ALPHA = 1.2          # SiD's α (1.0 on some data)
W_MIN = 1e-5         # floor of the per-sample normaliser w


def sigma_of_t(t: torch.Tensor, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> torch.Tensor:
    """The Karras schedule at t ∈ [0, 1]: σ_t = (σ_max^(1/ρ) + (1 − t)(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ.

    σ_0 = σ_min, σ_1 = σ_max; t ≤ 0.8 gives σ_t ≤ 24.4.

    >>> [round(float(s), 4) for s in sigma_of_t(torch.tensor([0.0, 1.0]))]
    [0.002, 80.0]
    """
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (hi + (1 - t) * (lo - hi)) ** rho


def t_of_sigma(sigma: float, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> float:
    """The inverse of `sigma_of_t`: the t ∈ [0, 1] at which the schedule reaches σ.

    >>> round(float(sigma_of_t(torch.tensor(t_of_sigma(0.1)))), 6)
    0.1
    """
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return 1.0 - (float(sigma) ** (1 / rho) - hi) / (lo - hi)


def generator_sigma(u: torch.Tensor, t_max: float = T_MAX, sigma_floor: float = 0.0) -> torch.Tensor:
    """σ_t of the generator loss from uniform draws u ∈ [0, 1): t = t_lo + u·(t_max/1000 − t_lo), with
    t_lo = t(σ_floor) (0 without a floor), so σ_t ∈ [max(σ_floor, σ_min), σ(t_max/1000)].

    >>> s = generator_sigma(torch.linspace(0, 1, 5), sigma_floor=0.1)
    >>> round(float(s[0]), 4), round(float(s[-1]), 1)
    (0.1, 24.4)
    """
    t_lo = t_of_sigma(sigma_floor) if sigma_floor > 0 else 0.0
    return sigma_of_t(t_lo + u * (t_max - 1000.0 * t_lo) / 1000.0)   # no floor: u·t_max/1000 as published


def measure(op, x_image: torch.Tensor, sigma_n: torch.Tensor,
            draw_normal: Callable[[tuple[int, ...]], torch.Tensor]) -> torch.Tensor:
    """ỹ = P_M(A x + σ_n·n): a synthetic measurement of x (image layout) on the operator's measured entries.

    draw_normal(shape) -> standard normal (B, *shape) real; complex measurements draw (…, 2) and use
    the pairs as real and imaginary parts (N(0, 1) each, the σ_n convention). σ_n (B,) per sample.
    """
    with torch.autocast(device_type=x_image.device.type, enabled=False):
        y = op.A(promote(x_image))
        if y.is_complex():
            noise = torch.view_as_complex(draw_normal((*y.shape[1:], 2)).to(y.real.dtype).contiguous())
        else:
            noise = draw_normal(tuple(y.shape[1:])).to(y.dtype)
        s = per_sample(sigma_n.to(y.device, y.real.dtype), y)
        return op.keep_measured(y + s * noise.to(y.device))


def generator_loss(f_teacher: torch.Tensor, f_fake: torch.Tensor, u: torch.Tensor,
                   view_output: Callable[[torch.Tensor], torch.Tensor], alpha: float = ALPHA) -> torch.Tensor:
    """L_G per sample (B,), see the module docstring. f_teacher, f_fake: denoiser outputs at x_t (network
    channels); u = P(x_g); view_output: f -> P(f) (`Measurement.reproject`: identity for data-space teachers)."""
    p_teacher = view_output(f_teacher).float()
    p_diff = p_teacher - view_output(f_fake).float()
    u = u.float()
    w = (u - p_teacher).abs().flatten(1).mean(dim=1).clamp_min(W_MIN).detach()
    return (p_diff * (p_teacher - u - alpha * p_diff)).flatten(1).sum(dim=1) / w


def finite_mean(per_sample: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Mean over the finite entries of a (B,) loss (samples with NaN/Inf dropped) and how many were dropped.

    All dropped gives NaN, so the training loop stops with its message.
    """
    finite = torch.isfinite(per_sample)
    kept = int(finite.sum())
    if kept == 0:
        return per_sample.sum() * float("nan"), per_sample.numel()
    return torch.where(finite, per_sample, torch.zeros_like(per_sample)).sum() / kept, per_sample.numel() - kept
