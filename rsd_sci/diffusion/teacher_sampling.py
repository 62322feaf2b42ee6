"""Samples from a teacher: EDM Heun (data-space teachers, optionally truncated at σ_n) or the Ambient
sampler (masked and measurement-domain teachers), METHOD.md "Sampling".

The Ambient sampler needs one further operator per sample "at the training density": it is drawn from
the operators of real (held-out) measurements, as in training; their values are never used, only their
masks and coil maps.

Measurement-domain Ambient teachers (MRI, CT) stop by default at σ = 0.1 (`AMBIENT_STOP_SIGMA`): they
return the x0-prediction of the last level ≥ 0.1 (σ = 0.14 of the 18-level schedule, 27 network calls)
instead of integrating to σ_min. With EDM preconditioning their D tends to its thinned, aliased input as
σ → 0 (c_skip → 1, c_out → σ; the rows Â leaves out must come from c_out·F), and the ODE then shrinks
every left-out row towards zero: measured on the quality runs (docs/benchmarks.md), samples integrated
to σ_min sit further from the clean images than the stopped ones (patch SW, MRI 0.051 vs 0.040, CT
0.082 vs 0.010). `stop_sigma=0` integrates to σ_min all the same.

    images = sample_teacher(teacher, ops_batch, seed=0)      # (n, channels, H, W), network channels
"""

from __future__ import annotations

from typing import Callable

import torch

from rsd_sci.diffusion.losses import ambient_denoiser
from rsd_sci.diffusion.samplers import karras_sigmas, sample_euler, sample_heun
from rsd_sci.engine.keyed_random import keyed_randn
from rsd_sci.physics.factory import build_operator

SAMPLE_STREAM = 7  # keyed-random stream of the sampler's starting noise
SAMPLERS = ("auto", "heun", "euler", "ambient")
AMBIENT_STOP_SIGMA = 0.1   # default stop of measurement-domain Ambient teachers (module docstring)
STOPPING_FAMILIES = ("mri", "ct")


def default_stop_sigma(teacher) -> float:
    """The level `sample_teacher` stops at when none is named: 0.1 for measurement-domain Ambient teachers
    (MRI, CT), else 0 (no stop; pixel-mask teachers keep Daras et al.'s full sampler)."""
    ambient_rows = teacher.space.kind == "ambient" and teacher.spec.get("family") in STOPPING_FAMILIES
    return AMBIENT_STOP_SIGMA if ambient_rows else 0.0


def stop_description(stop_sigma: float) -> str:
    """How a sample ends, for figure titles: "x0 at the last level ≥ 0.1" or "integrated to σ_min"."""
    return f"x0 at the last level ≥ {stop_sigma:g}" if stop_sigma > 0 else "integrated to σ_min"


def batch_denoiser(teacher, batch: dict, seed: int = 0):
    """(A, denoise(x, σ) -> x0) for a batch: for Ambient teachers one further operator Â per sample
    (keyed by its index, at the training density) and the network image R̂Â x with Â's channels at every
    call; for data-space teachers D(x, σ) itself. x and x0 in network channels."""
    D, space = teacher.denoiser, teacher.space
    op = build_operator(teacher.spec, batch)
    if space.kind == "ambient":
        op_hat = space.further(op, batch, seed)
        return op, ambient_denoiser(D, space, op_hat, space.cond(op_hat, batch))

    def denoise(x, sigma):
        return D(x, sigma, None)

    return op, denoise


def sample_teacher(teacher, ops_batch: dict, seed: int = 0, steps: int = 18, sampler: str = "auto",
                   truncate: bool | None = None, stop_sigma: float | None = None,
                   progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """One sample per entry of `ops_batch` (a batch dict whose masks/maps define the operators).

    sampler "auto": the Ambient sampler (Heun steps) for ambient teachers, Heun otherwise; "euler" for
    first-order steps. truncate (default: for Tweedie teachers) returns the x0-prediction at the last
    level still ≥ σ_n. stop_sigma returns it at the last level ≥ stop_sigma instead of integrating to
    σ_min; None: `default_stop_sigma(teacher)` (0.1 for MRI and CT Ambient teachers, module docstring);
    0: no stop.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r} ({', '.join(SAMPLERS)})")
    space = teacher.space
    op, denoise = batch_denoiser(teacher, ops_batch, seed)
    keys = ops_batch["index"]
    noise = keyed_randn(keys, tuple(space.noise_shape(ops_batch)[1:]), seed, 0, SAMPLE_STREAM).to(keys.device)
    truncate = teacher.member == "tweedie" if truncate is None else truncate
    sigma_n = ops_batch["sigma_n"] if truncate else None
    stop_sigma = default_stop_sigma(teacher) if stop_sigma is None else float(stop_sigma)
    if stop_sigma < 0:
        raise ValueError(f"stop_sigma must be at least 0, got {stop_sigma:g}")
    if stop_sigma > 0:
        floor = torch.full_like(ops_batch["sigma_n"], stop_sigma)
        sigma_n = floor if sigma_n is None else torch.maximum(sigma_n, floor)
    step = sample_euler if sampler == "euler" else sample_heun
    with torch.no_grad():
        return step(denoise, noise, karras_sigmas(steps, device=noise.device), truncate_at=sigma_n,
                    progress=progress)
