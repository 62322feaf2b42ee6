"""The thin functions of the Python API (`rsd_sci.__all__`, docs/python.md) that are not already a
function of a floor below: each calls the code the CLI runs.

    train(out, **settings)                          rsd_sci.apps.train.run_training (as `rsd-sci train`)
    sample(model, n)                                rsd_sci.engine.sampling.draw_samples
    read_measurements(set_dir)                      a measurement set's rows as a Measurement
    read_scan(path, model)                          a fastMRI / NIfTI file as `reconstruct` reads it
    reconstruct(m, method, model)                   rsd_sci.posterior.reconstruct.reconstruct_batch
    fid_kid(samples, reference, extractor)          rsd_sci.metrics.features.feature_distances

Images come back in the operator's image layout: MRI complex (B, 1, H, W), CT and images real
(B, 1, H, W), in the normalised units of the data (docs/file-formats.md); `.abs()` gives MRI magnitudes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rsd_sci.apps.reconstruct_files import Scan
from rsd_sci.diffusion.model import Model
from rsd_sci.engine.model import load_model
from rsd_sci.errors import InputError
from rsd_sci.measurement import Measurement

Progress = Callable[[int, int], None]


def train(out: str | Path, **settings) -> dict:
    """Train a run in folder `out` as `rsd-sci train --out OUT` does: the teacher, its distillation into
    the one-step generator, then (unless evaluate=False) the evaluation and OUT/report.md.

    settings: `rsd_sci.config.TrainConfig` fields (modality, data, stage, preset, steps, batch,
    distill_steps, evaluate, device, seed, ...) and the options of the measurement set built from the
    phantoms or a raw folder (`rsd_sci.config.MAKE_OPTIONS`: accel, coils, views, corruption, size,
    n_train, n_test, ...). The same call again resumes; settings that contradict the run in `out` raise
    InputError (more steps or another device may change). Returns {"data", "teacher", "generator",
    "report", "metrics"}, those made.
    """
    from rsd_sci.config import MAKE_OPTIONS, TrainConfig, run_config
    from rsd_sci.apps.train import run_training

    out = Path(out)
    known = set(MAKE_OPTIONS) | ({f.name for f in dataclasses.fields(TrainConfig)} - {"make"})
    unknown = set(settings) - known
    if unknown:
        raise TypeError(f"train() got unknown settings: {', '.join(sorted(unknown))}")
    requested = {k: v for k, v in settings.items() if k not in MAKE_OPTIONS}
    requested["make"] = {k: v for k, v in settings.items() if k in MAKE_OPTIONS}
    return run_training(run_config(out, requested, torch.cuda.is_available()), out)


def sample(model: Model, n: int, sampler: str | None = None, steps: int = 18, seed: int = 0, batch: int = 16,
           stop_sigma: float | None = None, truncate: bool | None = None, progress: Progress | None = None
           ) -> torch.Tensor:
    """n images from a model, (n, 1, H, W) on the CPU in the operator's image layout, as `rsd-sci sample`.

    sampler: "onestep" (a generator: one network call), "heun" (a teacher: `steps` noise levels, Ambient
    teachers stopped at σ = 0.1 unless `stop_sigma` says otherwise, Tweedie teachers truncated at σ_n
    unless `truncate` is False) or "ambient" (heun, refused for teachers that are not Ambient); None: the
    model's own (onestep for generators, heun for teachers). Image i depends only on seed and i.
    """
    from rsd_sci.engine.sampling import draw_samples

    sampler = sampler or ("onestep" if model.kind == "generator" else "heun")
    device = next(model.denoiser.parameters()).device
    images = draw_samples(model, n, sampler, steps, truncate, batch, seed, device, progress, stop_sigma)
    return model.family.to_image(images)


def read_measurements(path: str | Path, split: str = "test", indices=None, device: str | torch.device = "cpu"
                      ) -> Measurement:
    """Rows of a measurement set's split ("test" or "train") as a Measurement on `device`: m.y and the
    operator, and in m.batch the per-sample masks, coil maps, σ_n, scale, offset and, in the test split,
    the clean targets (N, 1, h, w) (docs/file-formats.md). indices: a list of rows or a slice (e.g.
    slice(16): the first 16, or fewer), default all. Each row keeps its index in the split, so
    reconstructions equal `rsd-sci reconstruct --input SET`'s."""
    from rsd_sci.data.batches import load_batch
    from rsd_sci.data.measurement_set import open_measurement_set
    from rsd_sci.measurement import family_of

    splits = dict(zip(("train", "test"), open_measurement_set(path)))
    if split not in splits:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ms = splits[split]
    if ms is None:
        raise InputError(path, f"holds no {split} split")
    rows = range(len(ms))
    if indices is not None:
        rows = rows[indices] if isinstance(indices, slice) else indices
    return family_of(ms.info.operator).measure(load_batch(ms, rows, device))


def read_scan(path: str | Path, model: Model | None = None, modality: str | None = None,
              accel: float | None = None, mask: str | None = None, center_fraction: float | None = None,
              views: int | None = None, virtual_coils: int | None = None) -> Scan:
    """One fastMRI file or NIfTI volume as `rsd-sci reconstruct --input FILE` reads it: a `Scan` whose
    `measurement()` holds its slices in normalised units and whose `to_file_units(images)` takes
    reconstructions back to the file's units (fastMRI: magnitudes at its reconstruction size).

    With a model, the data are made as the model's were (its mask, coils, views, corruption); without
    one from modality (NIfTI: mri, ct or image; default mri), accel, mask and center_fraction (MRI) or
    views (CT), `rsd-sci data make`'s defaults where None. A fastMRI file with its own `mask` is used as
    measured; a fully sampled one takes the mask seeded by its name. virtual_coils: SVD coil compression
    of multi-coil fastMRI data (default: as the model was trained).
    """
    from rsd_sci.data.volume_samples import check_fits_model
    from rsd_sci.apps import reconstruct_files as fr
    from rsd_sci.apps.reconstruct_plan import input_kind

    kind, _ = input_kind(Path(path))
    if kind == "set":
        raise InputError(path, "is a measurement set: read it with read_measurements")
    if Path(path).is_dir():
        raise InputError(path, "is a folder: read its files one at a time")
    modality = "mri" if kind == "fastmri" else fr.modality_of(None, model, modality)
    options = fr.data_options(model, modality=modality, accel=accel, mask=mask, center_fraction=center_fraction,
                              views=views, virtual_coils=virtual_coils)
    if kind == "nifti" and model is not None:
        check_fits_model(path, options, model.meta["operator"])
    return fr.load_scan(Path(path), options)


def reconstruct(m: Measurement, method: str, model: Model | str | Path | None = None, n_samples: int = 1,
                steps: int | None = None, seed: int = 0, progress: Progress | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(mean, std) reconstructions of m.y, (B, 1, H, W) in the operator's image layout; std (real) only
    for n_samples > 1. As `rsd-sci reconstruct`, with the same keyed randomness.

    method (`rsd_sci.METHODS`): "adps" (posterior sampling with a teacher: n_samples posterior samples,
    their mean and pixel-wise std), "generator" (the generator prior; n_samples restarts are a spread,
    not posterior samples), or a classical baseline that fits the family: "zero-filled", "cg-sense",
    "l1-wavelet" (MRI), "fbp", "tv" (CT), "corrupted" (images). model: a `Model`, or a model file or
    run folder (its teacher for adps, its generator otherwise), loaded on m.y's device. steps: A-DPS
    noise levels (300), generator-prior iterations (200), cg-sense 30, l1-wavelet 50, tv 100.
    """
    from rsd_sci.posterior.reconstruct import LEARNED, reconstruct_batch

    if isinstance(model, (str, Path)):
        kind = "teacher" if method == "adps" else None
        model = load_model(model, m.y.device, kind=kind) if method in LEARNED else None   # baselines take none
    return reconstruct_batch(method, m, model, n_samples, seed, steps, progress)


def _image_array(images) -> np.ndarray:
    """(N, C, H, W) float32 numpy from a tensor or an array; complex values become magnitudes."""
    a = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    return (np.abs(a) if np.iscomplexobj(a) else a).astype(np.float32)


def fid_kid(samples, reference, extractor, device: str | torch.device = "cpu") -> dict:
    """{"fid", "kid", "feature_dim", "feature_interface"} of two image sets (N, C, H, W) and (M, C, H, W)
    (tensors or arrays; complex: magnitudes) through your feature extractor: a TorchScript file (loaded
    without pickle) or a module, one-channel (forward(x): fed (B, 1, H, W) float32) or the StyleGAN2-ADA
    Inception detector (forward(x, return_features): fed the magnitudes as they are, zero-padded to a
    centred square, in 3 channels: the published protocol), returning (B, d) features
    (`rsd_sci.metrics.extractors`)."""
    from rsd_sci.metrics.extractors import load_extractor
    from rsd_sci.metrics.features import feature_distances

    path = None
    if isinstance(extractor, (str, Path)):
        path = Path(extractor)
        extractor = load_extractor(path, device)
    return feature_distances(path, extractor, _image_array(samples), _image_array(reference), device)
