"""Images from a model file: the one-step generator or the teacher's samplers (`rsd-sci sample`).

    model = load_model("RUN/generator.safetensors")          # `rsd_sci.engine.model`; or a teacher, a run
    images = draw_samples(model, n=16, sampler="onestep", seed=0)   # (n, C, H, W) network channels

Samplers:
    onestep   x = G_ema(z_in, σ_init): one network call (generator files)
    heun      the teacher's EDM Heun sampler, `steps` levels (2·steps − 1 calls); Ambient teachers use the
              Ambient sampler's projection at every call, as they must; `truncate` stops Tweedie
              teachers at σ_n (their default); Ambient teachers (MRI, CT, pixel masks) stop at σ = 0.1 unless
              `stop_sigma` says otherwise (`rsd_sci.diffusion.teacher_sampling`)
    ambient   the same, refused for teachers that are not Ambient (masked or measurement-domain)

Every sample i takes the operator of bank entry i mod N stored in the model (`operator_bank`) and is keyed
by i and the seed, so sample i is the same whatever the batch size or n.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from rsd_sci.diffusion.model import Model
from rsd_sci.errors import InputError

SAMPLE_SAMPLERS = ("onestep", "heun", "ambient")   # what `rsd-sci sample --sampler` offers


def model_kind_for(sampler: str | None) -> str | None:
    """The model file a sampler needs from a run directory: the teacher for heun and ambient, else the
    generator (or, with no sampler named, the generator where there is one)."""
    return "teacher" if sampler in ("heun", "ambient") else None


def check_sampler(loaded: Model, sampler: str) -> None:
    if sampler not in SAMPLE_SAMPLERS:
        raise InputError(None, f"unknown sampler {sampler!r} ({', '.join(SAMPLE_SAMPLERS)})")
    if sampler == "onestep" and loaded.kind != "generator":
        raise InputError(loaded.path, "is a teacher: --sampler onestep needs a generator.safetensors")
    if sampler != "onestep" and loaded.kind != "teacher":
        raise InputError(loaded.path, f"is a generator: --sampler {sampler} needs a teacher.safetensors")
    if sampler == "ambient" and loaded.family.kind != "ambient":
        raise InputError(loaded.path, f"is a {loaded.member} teacher, not an Ambient one: use --sampler heun")


def draw_samples(loaded: Model, n: int, sampler: str = "onestep", steps: int = 18, truncate: bool | None = None,
                 batch: int = 16, seed: int = 0, device: str | torch.device = "cpu",
                 progress: Callable[[int, int], None] | None = None, stop_sigma: float | None = None) -> torch.Tensor:
    """n images (n, C, H, W) in network channels on the CPU, in batches of `batch`. Teachers: `stop_sigma`
    as in `sample_teacher` (None: 0.1 for Ambient teachers, 0: integrate to σ_min)."""
    from rsd_sci.diffusion.teacher_sampling import sample_teacher
    from rsd_sci.distill.distiller import generate
    from rsd_sci.distill.draws import KeyedDraws
    from rsd_sci.engine.operator_bank import bank_batch

    check_sampler(loaded, sampler)
    out = []
    for start in range(0, n, batch):
        m = loaded.family.measure(bank_batch(loaded.meta["bank"], range(start, min(n, start + batch)), device))
        with torch.no_grad():
            if sampler == "onestep":
                x = generate(loaded.denoiser, m, KeyedDraws(m.index, seed, 0), float(loaded.meta["sigma_init"]))
            else:
                x = sample_teacher(loaded, m, seed=seed, steps=steps, sampler="heun", truncate=truncate,
                                   stop_sigma=stop_sigma)
        out.append(x.float().cpu())
        if progress is not None:
            progress(min(n, start + batch), n)
    return torch.cat(out)


def check_sample_memory(loaded: Model, n: int) -> None:
    """InputError naming -n when n images of the model's shape (kept on the CPU, then converted for
    writing: 3.5 copies in float32 measured at -n 100000) would not fit in memory."""
    from rsd_sci.engine.operator_bank import bank_batch
    from rsd_sci.memory_guard import check_fits_in_memory

    shape = loaded.family.measure(bank_batch(loaded.meta["bank"], [0])).generator_shape()[1:]
    check_fits_in_memory(4 * 4 * n * math.prod(shape), f"-n {n} images of shape {list(shape)}")


def to_output(loaded: Model, images: torch.Tensor, keep_complex: bool = False, scale: float | None = None,
              offset: float = 0.0):
    """Network channels -> numpy (n, H, W) (magnitude of complex images) or (n, 2, H, W) with keep_complex;
    with a data scale, x = (x' − offset)/scale (the measurement set's x' = scale·x + offset)."""
    x = loaded.family.to_image(images)
    if x.is_complex():
        x = torch.view_as_real(x[:, 0]).movedim(-1, 1) if keep_complex else x[:, 0].abs()
    else:
        x = x[:, 0]
    if scale is not None:
        if scale == 0:
            raise InputError(None, "--scale must not be 0")
        x = (x - offset) / scale
    return x.double().numpy().astype("float32")
