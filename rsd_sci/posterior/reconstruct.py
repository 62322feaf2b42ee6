"""Posterior reconstruction of a batch by any method (`rsd-sci reconstruct`), and fastMRI volumes as
batches exactly as `data make --source fastmri` builds them.

Methods, per modality (the operator family of the data):

    mri   zero-filled   A^H y (the coil-combined zero-filled image)             baselines, no model
          cg-sense      CG-SENSE (sigpy), `steps` CG iterations (default 30)
          l1-wavelet    L1-wavelet compressed sensing (sigpy), `steps` iterations (default 50)
    ct    fbp           filtered back-projection
          tv            TV by Chambolle–Pock, `steps` iterations (default 100)
    image corrupted     the corrupted image as measured: y (noise, blur), nearest up-sampling of y
                        (down-sampling), M ⊙ y (inpainting): the operator's R(y)
    any   adps          A-DPS with the teacher, `steps` noise levels (default 300)   learned
                        (not for blur and down-sampling: their teachers model the corrupted images)
          generator     the generator prior, `steps` Adam iterations on z (default 200)

`n_samples` = K > 1:
    adps       K posterior samples, seeds seed, ..., seed + K − 1; returns their mean and std
    generator  K keyed restarts of one optimisation: a SPREAD of local optima, NOT posterior samples;
               its std is no posterior uncertainty
    baselines  deterministic: K must be 1

std is the per-pixel sample standard deviation of the K images around their mean (complex images: over
real and imaginary parts, √(Σ_k |x_k − x̄|² / (K − 1))), real (B, 1, H, W); None for K = 1.

A-DPS with an Ambient teacher runs down to sigma_min = 0.05 (see `rsd_sci.posterior.adps`: the last,
smaller levels pull unmeasured rows towards zero), Tweedie / data-space teachers to 0.004.

Example (zero-filled, single-coil, fully sampled: the image itself):
    >>> import torch
    >>> from rsd_sci.physics.fourier import fft2c
    >>> x = torch.randn(1, 1, 4, 4, dtype=torch.complex64)
    >>> from rsd_sci.measurement import family_of
    >>> family = family_of({"family": "mri", "shape": [4, 4], "coils": 1})
    >>> m = family.measure({"y": fft2c(x), "masks": torch.ones(1, 4)})
    >>> mean, std = reconstruct_batch("zero-filled", m)
    >>> bool(torch.allclose(mean, x, atol=1e-5)), std
    (True, None)
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from rsd_sci.errors import InputError
from rsd_sci.measurement import Measurement, baselines_of

METHODS = ("adps", "generator", "zero-filled", "cg-sense", "l1-wavelet", "fbp", "tv", "corrupted")
LEARNED = ("adps", "generator")
DEFAULT_STEPS = {"adps": 300, "generator": 200, "cg-sense": 30, "l1-wavelet": 50, "tv": 100}
AMBIENT_SIGMA_MIN = 0.05   # A-DPS's last level for Ambient teachers (measured, see adps.py)


def check_method(method: str, family: str, model=None) -> None:
    """InputError unless `method` fits data of the operator family named `family` and `model` (a
    `rsd_sci.diffusion.model.Model` or None)."""
    if method not in METHODS:
        raise InputError(None, f"unknown method {method!r} ({', '.join(METHODS)})")
    if method in LEARNED:
        if model is None:
            raise InputError(None, f"--method {method} needs --model (a run directory or model file)")
        need = "teacher" if method == "adps" else "generator"
        if model.kind != need:
            raise InputError(model.path, f"is a {model.kind}: --method {method} needs a {need}.safetensors "
                                         "(or the run directory)")
        model_family = model.meta["operator"]["family"]
        if model_family != family:
            raise InputError(model.path, f"a {model_family} model cannot reconstruct {family} data")
        if method == "adps" and not model.family.teacher_is_clean_prior:
            raise InputError(model.path, f"models the corrupted images ({model.family.describe()}), not clean "
                                         "ones: A-DPS cannot use it; use --method generator with the generator")
        return
    fits = baselines_of(family)
    if method not in fits:
        hint = f" (for {family}: {', '.join(fits + LEARNED)})" if fits else f" (for {family}: adps, generator)"
        raise InputError(None, f"--method {method} does not fit {family} data{hint}")


def check_model_fits(model, spec: Mapping) -> None:
    """InputError unless the model's operator matches the data's in family, image size and coils."""
    mine = model.meta["operator"]
    if mine["family"] != spec["family"]:
        raise InputError(model.path, f"a {mine['family']} model cannot reconstruct {spec['family']} data")
    for key in ("shape", "image_size", "coils", "corruption"):
        if key in mine and key in spec and _plain(mine[key]) != _plain(spec[key]):
            raise InputError(model.path, f"was trained on {key} {_plain(mine[key])}, the data have "
                                         f"{_plain(spec[key])}")


def _plain(v):
    return [int(x) for x in v] if isinstance(v, (list, tuple)) else v


def _spread(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, std) over the leading K axis; std real, K − 1 in the denominator."""
    mean = images.mean(dim=0)
    dev = images - mean
    dev = dev.abs().square() if dev.is_complex() else dev.square()
    return mean, (dev.sum(dim=0) / (images.shape[0] - 1)).sqrt()


def reconstruct_batch(method: str, m: Measurement, model=None,
                      n_samples: int = 1, seed: int = 0, steps: int | None = None,
                      progress: Callable[[int, int], None] | None = None,
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean, std) reconstructions of m.y in the operator's image layout (B, 1, H, W) (complex for MRI);
    std None when n_samples == 1 (see the module docstring).

    m: a measurement-set batch as a `Measurement` (y, masks, centers, coil_maps, sigma_n, index and its
    operator); model: a `rsd_sci.diffusion.model.Model` (teacher for adps, generator for generator);
    `progress(i, total)` from the learned methods.
    """
    spec = m.spec
    check_method(method, m.name, model)
    if n_samples < 1:
        raise InputError(None, f"--n-samples must be at least 1 (got {n_samples})")
    if method not in LEARNED and n_samples > 1:
        raise InputError(None, f"--method {method} is deterministic: --n-samples must be 1")
    steps = DEFAULT_STEPS.get(method) if steps is None else int(steps)
    if method in LEARNED:
        check_model_fits(model, spec)
        return _learned(method, m, model, n_samples, seed, steps, progress)
    from rsd_sci.posterior import baselines

    y = m.y
    if method in ("zero-filled", "fbp", "corrupted"):
        with torch.no_grad():
            return baselines.zero_filled(m.op, y), None
    if method == "tv":
        return baselines.tv_ct(m.op, y, iters=steps), None
    maps = m.batch.get("coil_maps") if int(spec.get("coils", 1)) > 1 else None
    solver = baselines.cg_sense if method == "cg-sense" else baselines.l1_wavelet
    return solver(y, m.batch["masks"], maps, max_iter=steps), None


def _learned(method, m: Measurement, model, k, seed, steps, progress):
    if method == "adps":
        from rsd_sci.posterior.adps import adps

        sigma_min = AMBIENT_SIGMA_MIN if model.family.kind == "ambient" else 0.004
        runs = []
        for j in range(k):
            inner = None if progress is None else (lambda i, n, j=j: progress(j * n + i, k * n))
            runs.append(m.to_image(adps(model, m, steps=steps, seed=seed + j, sigma_min=sigma_min,
                                        progress=inner).detach()))
        images = torch.stack(runs)
    else:
        from rsd_sci.posterior.generator_prior import generator_prior

        x = generator_prior(model, m, iters=steps, seed=seed, restarts=k, progress=progress,
                            sigma_init=float(model.meta["sigma_init"])).detach()
        images = m.to_image(x.flatten(0, 1)).unflatten(0, x.shape[:2]) if k > 1 else m.to_image(x)[None]
    if k == 1:
        return images[0], None
    return _spread(images)
