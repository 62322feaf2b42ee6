"""Samples from a teacher: EDM Heun (data-space teachers, optionally truncated at σ_n) or the Ambient
sampler (masked and measurement-domain teachers), docs/method.md, Phase 1.

The Ambient sampler needs one further operator per sample "at the training density": it is drawn from
the operators of real (held-out) measurements, as in training; their values are never used, only their
masks and coil maps.

Ambient teachers (MRI, CT, pixel masks) stop by default at σ = 0.1 (the family's
`default_stop_sigma`): they return the x0-prediction of the last level ≥ 0.1 instead of integrating to
σ_min. With EDM preconditioning their D tends to its thinned, aliased input as σ → 0 (c_skip → 1,
c_out → σ; the rows or pixels Â leaves out must come from c_out·F), and the ODE then shrinks every
left-out row or pixel towards zero (measured: docs/method.md, "Sampling"). `stop_sigma=0` integrates to σ_min all the same.

    images = sample_teacher(teacher, m, seed=0)      # (n, channels, H, W) network channels; m a Measurement
"""

from __future__ import annotations

from typing import Callable

import torch

from rsd_sci.diffusion.losses import ambient_denoiser
from rsd_sci.diffusion.samplers import karras_sigmas, sample_euler, sample_heun
from rsd_sci.keyed_random import Stream, keyed_randn

TEACHER_SAMPLERS = ("auto", "heun", "euler", "ambient")


def default_stop_sigma(teacher) -> float:
    """The level `sample_teacher` stops at when none is named: the family's (0.1 for the Ambient
    teachers: MRI, CT, pixel masks; 0, no stop, for the data-space ones)."""
    return teacher.family.default_stop_sigma


def stop_description(stop_sigma: float) -> str:
    """How a sample ends, for figure titles: "x0 at the last level ≥ 0.1" or "integrated to σ_min"."""
    return f"x0 at the last level ≥ {stop_sigma:g}" if stop_sigma > 0 else "integrated to σ_min"


def batch_denoiser(teacher, m, seed: int = 0):
    """denoise(x, σ) -> x0 for a batch m (a `Measurement`): for Ambient teachers one further operator Â
    per sample (keyed by its index, at the training density) and the network image R̂Â x with Â's
    channels at every call; for data-space teachers D(x, σ) itself. x and x0 in network channels."""
    D = teacher.denoiser
    if teacher.family.kind == "ambient":
        return ambient_denoiser(D, m.further(seed))

    def denoise(x, sigma):
        return D(x, sigma, None)

    return denoise


def sample_teacher(teacher, m, seed: int = 0, steps: int = 18, sampler: str = "auto",
                   truncate: bool | None = None, stop_sigma: float | None = None,
                   progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """One sample per entry of the batch m (a `Measurement` whose masks/maps define the operators; its
    measurements are never used).

    sampler "auto": the Ambient sampler (Heun steps) for ambient teachers, Heun otherwise; "euler" for
    first-order steps. truncate (default: for Tweedie teachers) returns the x0-prediction at the last
    level still ≥ σ_n. stop_sigma returns it at the last level ≥ stop_sigma instead of integrating to
    σ_min; None: `default_stop_sigma(teacher)` (0.1 for Ambient teachers, module docstring);
    0: no stop.
    """
    if sampler not in TEACHER_SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r} ({', '.join(TEACHER_SAMPLERS)})")
    denoise = batch_denoiser(teacher, m, seed)
    keys = m.index
    noise = keyed_randn(keys, tuple(m.noise_shape()[1:]), seed, 0, Stream.SAMPLER_START).to(keys.device)
    truncate = teacher.member == "tweedie" if truncate is None else truncate
    sigma_n = m.sigma_n if truncate else None
    stop_sigma = default_stop_sigma(teacher) if stop_sigma is None else float(stop_sigma)
    if stop_sigma < 0:
        raise ValueError(f"stop_sigma must be at least 0, got {stop_sigma:g}")
    if stop_sigma > 0:
        floor = torch.full_like(m.sigma_n, stop_sigma)
        sigma_n = floor if sigma_n is None else torch.maximum(sigma_n, floor)
    step = sample_euler if sampler == "euler" else sample_heun
    with torch.no_grad():
        return step(denoise, noise, karras_sigmas(steps, device=noise.device), truncate_at=sigma_n,
                    progress=progress)
