"""Adversarial alignment of the teacher's and the fake score's predictions, data-free (after ADM: Lu et al.
2025, arXiv 2507.18569; docs/method.md, "Issue 24"): at the generator update's x_t a critic learns to tell
the teacher's x0-prediction from the fake score's, and the generator is moved so that the fake score's
looks like the teacher's. Where the generator draws the data's distribution both predict alike and the
critic cannot tell them apart; where it does not (one outline, missing detail) the fake score's prediction
shows it. No clean image and no measurement enters.

    real   a = [V(f_φ(x_t, σ_t)), ln(σ_t)/4]      V the generator loss's view: the full image
    fake   ã = [V(f_ψ(x_t, σ_t)), ln(σ_t)/4]      (m.identifiable) or P (the view's reprojection)
    critic loss      L_A = mean softplus(−C(a)) + mean softplus(C(ã))     (inputs detached)
    generator term   adm_weight · mean softplus(−C(ã)), through f_ψ(x_t) and x_t (ψ frozen)

Where we differ from ADM, for a CPU's budget: the critic sees the x0-predictions (ADM takes one ODE step
of each from t to an earlier t − Δt: our Δt = t) and is the small convolutional `MeasurementCritic` with
σ_t as one more channel (ADM's heads sit on a frozen diffusion backbone); the term is added to SiD's,
not put in its place. Shapes: f (B, C, H, W) network channels, σ (B,); critic inputs (B, C + 1, H, W).

Example:
    >>> import torch
    >>> critic_input(torch.zeros(2, 1, 4, 4), torch.tensor([1.0, 2.0])).shape
    torch.Size([2, 2, 4, 4])
"""

from __future__ import annotations

import torch

from rsd_sci.physics.broadcast import per_sample


def critic_input(f: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """[f, ln(σ)/4]: a prediction with its noise level as one more channel (EDM's c_noise), (B, C + 1, H, W)."""
    level = per_sample(torch.log(sigma.float()) / 4, f[:, :1]).expand_as(f[:, :1])
    return torch.cat([f.float(), level], dim=1)


def input_shape(network_shape) -> tuple[int, ...]:
    """The critic's (C + 1, H, W) for predictions of network shape (C, H, W)."""
    c, *spatial = (int(n) for n in network_shape)
    return (c + 1, *spatial)

