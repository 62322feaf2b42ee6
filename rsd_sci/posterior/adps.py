"""A-DPS: posterior sampling with the teacher (docs/method.md, Phase 1: Posterior), Chung et al.'s DPS with
the Ambient teacher's denoiser.

Euler steps of the probability-flow ODE dx/dσ = (x − D(x, σ))/σ on the Karras levels σ_0 = σ_max > ... >
σ_{N−1} = σ_min, σ_N = 0, each followed by a data-consistency step taken at the PRE-step iterate:

    x_0 = σ_max·z                                         z keyed N(0, I), (B, C, H, W) network channels
    for i = 0, ..., N − 1:
        x̂0 = D(x_i, σ_i)                                  with the graph to x_i
        r  = y − A·x̂0  on the measured entries (P_M)       per sample
        x' = x_i + (σ_{i+1} − σ_i)·(x_i − x̂0)/σ_i          Euler step (x' = x̂0 when σ_{i+1} = 0)
        x_{i+1} = x' − ζ·∇_{x_i}‖r‖²/‖r‖ = x' − 2ζ·∇_{x_i}‖r‖
    return x_N                                            the last x̂0 with its data-consistency step

The denoiser sees the measurement's own rows thinned once, as in training (Ambient teachers):
Â = m.further(seed), D(x, σ) = D_θ(R̂·Â x, σ, cond(Â)) (`ambient_denoiser`). A data-space
teacher (noise, blur, down-sampling) models the corrupted images themselves, so its x̂0 already lives in
y's space: r = y − x̂0 (A = I for denoising; for blur and down-sampling the result is the restored
corrupted image, the space the teacher models). A Tweedie teacher was never trained below σ_n: per
sample, the run stops at the last level σ_i ≥ σ_n, returning that level's x̂0 with its data-consistency
step (as if σ_{i+1} were 0); σ_n = m.sigma_n.

ζ: the step 2ζ·∇‖r‖ is of length ≈ 2ζ·‖A‖, so the default is ζ = 1/‖A‖ per sample (the family's
`default_zeta`): the published ζ = 1 for MRI with unit-RSS maps and for image operators (‖A‖ = 1), and
1/‖A‖ for CT, where ζ = 1 diverges. With EDM preconditioning an Ambient teacher's x̂0 tends to its
thinned input R̂·Â x as σ → 0 (c_skip → 1, c_out → σ), so the last levels pull the unmeasured rows back
towards zero: Ambient teachers stop at a larger sigma_min (`rsd_sci.posterior.reconstruct`; measured in
docs/method.md, "Posterior").

`n_samples` posterior samples are runs with different seeds (the caller's loop).

Example (A = I on a 2×2 image, exact Gaussian denoiser of N(0, I) data):
    >>> import torch, types
    >>> from rsd_sci.measurement import family_of
    >>> family = family_of({"family": "image", "shape": [2, 2], "corruption": "noise"})
    >>> D = lambda x, sigma, cond=None: x / (1 + sigma.view(-1, 1, 1, 1) ** 2)
    >>> teacher = types.SimpleNamespace(denoiser=D, family=family, member="tweedie")
    >>> m = family.measure({"y": torch.ones(1, 1, 2, 2), "sigma_n": torch.tensor([0.1]), "index": torch.tensor([0])})
    >>> adps(teacher, m, steps=20).shape
    torch.Size([1, 1, 2, 2])
"""

from __future__ import annotations

from typing import Callable

import torch

from rsd_sci.diffusion.samplers import karras_sigmas
from rsd_sci.diffusion.teacher_sampling import batch_denoiser
from rsd_sci.keyed_random import Stream, keyed_randn
from rsd_sci.measurement import Measurement


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    """‖t‖ per sample (complex: over real and imaginary parts), (B,)."""
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.flatten(1).norm(dim=1)


def adps(teacher, m: Measurement, steps: int = 300,
         zeta: float | None = None,    # data-consistency step size; None: 1/‖A‖ (the family's)
         sigma_max: float = 10.0,      # σ_0, the start
         sigma_min: float = 0.004,     # σ_{N−1}, the last non-zero level
         rho: float = 7.0,             # Karras schedule curvature
         seed: int = 0,
         progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """A-DPS reconstructions of m.y, (B, C, H, W) network channels (see the module docstring).

    teacher: a `rsd_sci.diffusion.model.Model` (or any object with .denoiser D(x, σ, cond), .family,
    .member); m: the batch as a `Measurement` (y, index, the operator, sigma_n for Tweedie teachers).
    """
    y = m.y
    denoise = batch_denoiser(teacher, m, seed)
    zeta = m.default_zeta() if zeta is None else torch.full((y.shape[0],), float(zeta))
    zeta = zeta.to(y.device)
    floor = torch.zeros(y.shape[0], device=y.device)  # per-sample σ below which the run jumps to 0
    if teacher.family.kind != "ambient" and teacher.member == "tweedie":
        floor = torch.as_tensor(m.sigma_n, dtype=torch.float32, device=y.device).reshape(-1)
    z = keyed_randn(m.index.cpu(), tuple(m.noise_shape()[1:]), seed, 0, Stream.ADPS_START).to(y.device)
    levels = [float(s) for s in karras_sigmas(steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)]
    x = sigma_max * z
    done = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
    column = (-1,) + (1,) * (x.dim() - 1)
    for i in range(steps):
        sigma = levels[i]
        x_prev = x.detach().requires_grad_(True)
        with torch.enable_grad():
            x0 = denoise(x_prev, torch.full((x.shape[0],), sigma, device=x.device))
            norm = _flat_norm(m.output_misfit(x0))
            (grad,) = torch.autograd.grad(norm.sum(), x_prev)  # samples are independent: ∇‖r_b‖ each
        x0 = x0.detach()
        nxt = torch.full((x.shape[0],), levels[i + 1], device=x.device)
        nxt = torch.where(nxt < floor, torch.zeros_like(nxt), nxt)  # below the floor: jump to σ = 0
        x_next = x + ((nxt - sigma) / sigma).view(column) * (x - x0) - 2.0 * zeta.view(column) * grad
        x = torch.where(done.view(column), x, x_next.detach())
        done |= nxt == 0
        if progress is not None:
            progress(i + 1, steps)
        if bool(done.all()):
            break
    return x
