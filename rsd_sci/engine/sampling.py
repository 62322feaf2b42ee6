"""Images from a model file: the one-step generator or the teacher's samplers (`rsd-sci sample`).

    model = load_model("RUN/generator.safetensors")          # or a teacher file, or a run directory
    images = draw_samples(model, n=16, sampler="onestep", seed=0)   # (n, C, H, W) network channels

Samplers:
    onestep   x = G_ema(z_in, σ_init): one network call (generator files)
    heun      the teacher's EDM Heun sampler, `steps` levels (2·steps − 1 calls); Ambient teachers use the
              Ambient sampler's projection at every call, as they must; `truncate` stops Tweedie
              teachers at σ_n (their default); MRI and CT Ambient teachers stop at σ = 0.1 unless
              `stop_sigma` says otherwise (`rsd_sci.diffusion.teacher_sampling`)
    ambient   the same, refused for teachers that are not Ambient (masked or measurement-domain)

Every sample i takes the operator of bank entry i mod N stored in the model (`operator_bank`) and is keyed
by i and the seed, so sample i is the same whatever the batch size or n.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import torch

from rsd_sci.errors import InputError

SAMPLERS = ("onestep", "heun", "ambient")


@dataclasses.dataclass
class LoadedModel:
    kind: str            # "teacher" | "generator"
    model: object        # a `Teacher` (for a generator: its denoiser is the generator)
    meta: dict           # the file's metadata; meta["bank"] the operator bank
    path: Path


def resolve_model_path(path: str | Path, sampler: str | None = None) -> Path:
    """A model file, or a run directory: its generator (one-step or no sampler named) or teacher."""
    path = Path(path)
    if path.is_dir():
        names = ["teacher.safetensors"] if sampler in ("heun", "ambient") else ["generator.safetensors",
                                                                               "teacher.safetensors"]
        for name in names:
            if (path / name).is_file():
                return path / name
        raise InputError(path, f"holds no {' or '.join(names)}")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu", sampler: str | None = None) -> LoadedModel:
    """A teacher or generator file (or a run directory, see `resolve_model_path`) on `device`."""
    from rsd_sci.engine.checkpoint import load_safetensors

    path = resolve_model_path(path, sampler)
    kind = load_safetensors(path)[1].get("kind")
    if kind == "teacher":
        from rsd_sci.engine.teacher import load_teacher

        model, meta = load_teacher(path, device)
    elif kind == "generator":
        from rsd_sci.engine.distillation import load_generator

        model, meta = load_generator(path, device)
    else:
        raise InputError(path, f"is not an rsd-sci teacher or generator (kind {kind!r})")
    if meta.get("bank") is None:
        raise InputError(path, "holds no operator bank (made by an older rsd-sci); re-export it with `train`")
    return LoadedModel(kind, model, meta, path)


def check_sampler(loaded: LoadedModel, sampler: str) -> None:
    if sampler not in SAMPLERS:
        raise InputError(None, f"unknown sampler {sampler!r} ({', '.join(SAMPLERS)})")
    if sampler == "onestep" and loaded.kind != "generator":
        raise InputError(loaded.path, "is a teacher: --sampler onestep needs a generator.safetensors")
    if sampler != "onestep" and loaded.kind != "teacher":
        raise InputError(loaded.path, f"is a generator: --sampler {sampler} needs a teacher.safetensors")
    if sampler == "ambient" and loaded.model.space.kind != "ambient":
        raise InputError(loaded.path, f"is a {loaded.model.member} teacher, not an Ambient one: use --sampler heun")


def draw_samples(loaded: LoadedModel, n: int, sampler: str = "onestep", steps: int = 18, truncate: bool | None = None,
                 batch: int = 16, seed: int = 0, device: str | torch.device = "cpu",
                 progress: Callable[[int, int], None] | None = None, stop_sigma: float | None = None) -> torch.Tensor:
    """n images (n, C, H, W) in network channels on the CPU, in batches of `batch`. Teachers: `stop_sigma`
    as in `sample_teacher` (None: 0.1 for MRI/CT Ambient teachers, 0: integrate to σ_min)."""
    from rsd_sci.diffusion.teacher_sampling import sample_teacher
    from rsd_sci.distill.distiller import generate
    from rsd_sci.distill.draws import KeyedDraws
    from rsd_sci.engine.operator_bank import bank_batch
    from rsd_sci.physics.factory import build_operator

    check_sampler(loaded, sampler)
    model, out = loaded.model, []
    for start in range(0, n, batch):
        ops = bank_batch(loaded.meta["bank"], range(start, min(n, start + batch)), device)
        with torch.no_grad():
            if sampler == "onestep":
                op = build_operator(model.spec, ops)
                x = generate(model.denoiser, model.space, op, ops, KeyedDraws(ops["index"], seed, 0),
                             float(loaded.meta["sigma_init"]))
            else:
                x = sample_teacher(model, ops, seed=seed, steps=steps, sampler="heun", truncate=truncate,
                                   stop_sigma=stop_sigma)
        out.append(x.float().cpu())
        if progress is not None:
            progress(min(n, start + batch), n)
    return torch.cat(out)


def to_output(loaded: LoadedModel, images: torch.Tensor, keep_complex: bool = False, scale: float | None = None,
              offset: float = 0.0):
    """Network channels -> numpy (n, H, W) (magnitude of complex images) or (n, 2, H, W) with keep_complex;
    with a data scale, x = (x' − offset)/scale (the measurement set's x' = scale·x + offset)."""
    space = loaded.model.space
    x = space.to_image(images)
    if x.is_complex():
        x = torch.view_as_real(x[:, 0]).movedim(-1, 1) if keep_complex else x[:, 0].abs()
    else:
        x = x[:, 0]
    if scale is not None:
        if scale == 0:
            raise InputError(None, "--scale must not be 0")
        x = (x - offset) / scale
    return x.double().numpy().astype("float32")
