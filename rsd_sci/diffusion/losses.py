"""The teacher's loss family (docs/method.md, Phase 1): one function per member, no modality branches.

Every member shares σ sampling, the weight λ(σ) = (σ² + σ_d²)/(σ·σ_d)² (`precond.loss_weight`, kept with
the preconditioning) and the denoiser signature D(x, σ, cond) -> x0 (EDM preconditioning lives in D).
All family differences live in the measurement model (`rsd_sci.measurement`): every loss takes the
batch as a `Measurement` m (its operator built once). All random tensors are ARGUMENTS, drawn by the
caller with keyed randomness: `normal` for σ, the diffusion noise `noise`, and the further operator
(`m_hat = m.further(seed)`).
`sigma_data` (a keyword of every loss) is the denoiser's σ_d, 0.5 by default.

Shapes: B samples; y the measurement (m.y); σ a float or (B,); `noise` standard normal in network
channels, shape `m.noise_shape()` (B, channels, H, W); for complex images its two channels are
the real and imaginary parts (σ per real part); a complex tensor in the image layout is accepted too.

    1. plain    λ(σ)·mean‖D(y + σ n, σ) − y‖²                                      (data space)
    2. tweedie  σ ← max(σ, σ_n);  x_t = y + √(σ² − σ_n²)·n;  x̂0 = D(x_t, σ);
                D_y = (1 − σ_n²/σ²)·x̂0 + (σ_n²/σ²)·x_t;  λ(σ)·mean‖D_y − y‖²
                (samples clamped to σ_n have x_t = y = D_y: no loss and no gradient, as published)
    3./4. ambient  x_in = R̂(P_M̂ y) + σ·R̂Â n  (= R̂·Â(x + σ n) from the measurement alone);
                x0 = D(x_in, σ, cond(M̂));  λ(σ)·‖W(A·x0 − y)‖²/|M| on the ORIGINAL entries M

Reduction: per sample, the MEAN over elements (plain, tweedie) or /|M| real measured entries (ambient),
so losses are comparable across sizes; each function returns (B,) and the caller averages the batch.
For a full single-coil MRI mask with Â = A, members 1 and 3 agree exactly (F is orthonormal and |M|
counts real entries: 2·H·W).

Example:
    >>> import torch
    >>> from rsd_sci.measurement import family_of
    >>> family = family_of({"family": "image", "shape": [2, 2], "corruption": "noise"})
    >>> m = family.measure({"y": torch.ones(1, 1, 2, 2), "sigma_n": torch.zeros(1)})
    >>> D = lambda x, sigma, cond=None: 0.5 * x
    >>> float(plain_loss(D, m, 1.0, torch.zeros(1, 1, 2, 2))[0])
    1.25
"""

from __future__ import annotations

from typing import Callable

import torch

from rsd_sci.diffusion.precond import SIGMA_DATA, loss_weight
from rsd_sci.measurement import MEMBERS, Measurement
from rsd_sci.physics.broadcast import per_sample

Denoiser = Callable[..., torch.Tensor]  # D(x (B, C, H, W), sigma (B,), cond (B, Cc, H, W) | None) -> x0

P_MEAN = -1.2      # ln σ ~ N(P_MEAN, P_STD²) during training (EDM)
P_STD = 1.2


def sample_sigma(normal: torch.Tensor, P_mean: float = P_MEAN, P_std: float = P_STD) -> torch.Tensor:  # noqa: N803
    """σ = exp(P_mean + P_std·normal) for a standard-normal draw `normal` (B,)."""
    return torch.exp(P_mean + P_std * normal)


def _sigma_vector(sigma, like: torch.Tensor) -> torch.Tensor:
    """σ as a float32 (B,) tensor on like's device (a scalar is shared by the batch)."""
    s = torch.as_tensor(sigma, dtype=torch.float32, device=like.device)
    return s.expand(like.shape[0]) if s.dim() == 0 else s.reshape(-1)


def _mean_square(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean over elements of (a − b)², float32 (B,)."""
    return (a.float() - b.float()).square().flatten(1).mean(dim=1)


def tweedie_convert(x0: torch.Tensor, x_t: torch.Tensor, sigma: torch.Tensor, sigma_n: torch.Tensor) -> torch.Tensor:
    """D_y = (1 − σ_n²/σ²)·x̂0 + (σ_n²/σ²)·x_t, with σ ≥ σ_n (B,) each.

    If x̂0 = E[x | x_t] with x_t = x + σ·ε (a CLEAN denoiser), then D_y = E[y | x_t] for y = x + σ_n·ε'
    and x_t = y + √(σ² − σ_n²)·n: by Tweedie, E[x | x_t] = x_t + σ²∇log p_σ(x_t) and
    E[y | x_t] = x_t + (σ² − σ_n²)∇log p_σ(x_t); eliminate the score.
    """
    ratio = per_sample(sigma_n.square() / sigma.square(), x_t)
    return (1.0 - ratio) * x0.float() + ratio * x_t.float()


def plain_loss(D: Denoiser, m: Measurement, sigma, noise: torch.Tensor,
               sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """Member 1: λ(σ)·mean‖D(y + σ n, σ) − y‖², y = m.network_input(). Returns (B,).

    No conditioning: the teacher models the data image alone (for an ambient family this is the naive
    baseline on R(y)).
    """
    y = m.network_input()
    s = _sigma_vector(sigma, y)
    x0 = D(y + per_sample(s, y) * noise, s, None)
    return loss_weight(s, sigma_data) * _mean_square(x0, y)


def tweedie_loss(D: Denoiser, m: Measurement, sigma, noise: torch.Tensor,
                 sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """Member 2 (Ambient-Tweedie, DSD): see the module docstring. σ_n = m.sigma_n (B,) (0 if absent,
    which reduces to `plain_loss`). Returns (B,)."""
    y = m.network_input()
    sigma_n = m.sigma_n
    sigma_n = torch.zeros_like(_sigma_vector(0.0, y)) if sigma_n is None else _sigma_vector(sigma_n, y)
    s = torch.maximum(_sigma_vector(sigma, y), sigma_n)
    x_t = y + per_sample((s.square() - sigma_n.square()).clamp_min(0.0).sqrt(), y) * noise
    d_y = tweedie_convert(D(x_t, s, None), x_t, s, sigma_n)
    return loss_weight(s, sigma_data) * _mean_square(d_y, y)


def ambient_input(m_hat: Measurement, sigma: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """x_in = R̂(P_M̂ y) + σ·R̂Â n in network channels (B, channels, H, W); σ (B,)."""
    noise_image = noise if noise.is_complex() else m_hat.to_image(noise)
    projected = m_hat.project(noise_image)
    return m_hat.network_input() + per_sample(sigma, projected) * projected


def ambient_loss(D: Denoiser, m: Measurement, m_hat: Measurement, sigma, noise: torch.Tensor,
                 sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """Members 3 and 4: λ(σ)·‖W(A·D(x_in, σ, cond(Â)) − y)‖²/|M|, x_in from `ambient_input`; (B,).

    m: the batch with its operator A (the loss's entries M); m_hat: the same with the further operator Â
    (the input's, `m.further(seed)`).
    """
    s = _sigma_vector(sigma, m.y)
    x0 = D(ambient_input(m_hat, s, noise), s, m_hat.cond())
    return loss_weight(s, sigma_data) * m.residual(m.to_image(x0))


def teacher_loss(member: str, D: Denoiser, m: Measurement, sigma, noise: torch.Tensor,
                 m_hat: Measurement | None = None, sigma_data: float = SIGMA_DATA) -> torch.Tensor:
    """The member's per-sample loss (B,); `m_hat` is required for "ambient" and ignored otherwise."""
    if member == "plain":
        return plain_loss(D, m, sigma, noise, sigma_data)
    if member == "tweedie":
        return tweedie_loss(D, m, sigma, noise, sigma_data)
    if member == "ambient":
        if m_hat is None:
            raise ValueError("the ambient loss needs the further operator (m_hat = m.further(seed))")
        return ambient_loss(D, m, m_hat, sigma, noise, sigma_data)
    raise ValueError(f"unknown loss member {member!r} (expected one of {', '.join(MEMBERS)})")


def ambient_denoiser(D: Denoiser, m_hat: Measurement) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The Ambient sampler's denoiser (docs/method.md, Phase 1): denoise(x, σ) = D(R̂·Â x, σ, cond(Â)).

    x: the current iterate in network channels (B, channels, H, W); m_hat: the batch with one fixed
    further operator Â per sample at the training density. Returns x0 in network channels.
    """
    cond = m_hat.cond()

    def denoise(x: torch.Tensor, sigma) -> torch.Tensor:
        return D(m_hat.project(m_hat.to_image(x)), sigma, cond)

    return denoise
