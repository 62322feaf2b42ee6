"""What a trained run is worth on its held-out test set: the main job's last phase (`train`, `report`).

    results = evaluate_run(run_dir, EvalSettings(slices=4))   # writes RUN/samples/ and RUN/eval/

1. Image sets, RUN/samples/<name>.npy, magnitudes (n, H, W) float32 in the measurement set's normalised
   units (x' = scale·x + offset); CT images shifted so air is 0 and zeroed outside the scanned disc
   (`Measurement.metric_view`, as everything below):
       reference   the first n held-out clean targets (never seen in training; absent without targets)
       data        R(y) of the first n training measurements, what naive training would learn from
                   (zero-filled MRI, FBP CT, the corrupted image itself)
       teacher     n teacher samples as `rsd-sci sample --sampler heun` draws them (18 levels; the
                   Ambient projection at every call for Ambient teachers, truncated at σ_n for Tweedie)
       generator   n one-step generator samples
   Sample i uses the model's operator bank entry i mod 16 and keyed draws (seed, i), as `rsd-sci sample`.
   Sets larger than the reference (fastMRI: k-space image size vs reconstruction size) are centre-cropped.
2. metrics.json "distribution": for data, teacher and generator, the multi-scale patch sliced Wasserstein
   distance and the radially averaged power-spectrum distance to `reference` (lower is closer), and
   every set's spread (the per-pixel std across its images; a collapsed generator's is far below the
   reference's).
3. RUN/eval/reconstructions.h5: the first `slices` held-out measurements reconstructed by every method
   that fits the modality (baselines; A-DPS with `posterior_samples` samples, their mean and std; the
   generator prior, one start): `targets` (S, h, w), `<method>/mean` and `<method>/std` (S, h, w)
   magnitudes (centre-cropped to the targets' size, as fastMRI crops to the reconstruction size),
   attribute `seconds_per_slice` (wall time of the method over the slices / S).
4. metrics.json "reconstruction": per method, fastMRI-semantics NMSE / PSNR / SSIM per source volume
   (each phantom test slice is its own volume), their mean and std, seconds per slice.

Runs on one process; everything is written atomically (a killed evaluation leaves the previous files).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rsd_sci.data.atomic import atomic_path
from rsd_sci.data.batches import load_batch
from rsd_sci.data.finite_json import finite_json
from rsd_sci.data.measurement_set import open_measurement_set
from rsd_sci.diffusion.model import Model
from rsd_sci.engine.model import load_model
from rsd_sci.engine.sampling import draw_samples, to_output
from rsd_sci.measurement import family_of
from rsd_sci.posterior.reconstruct import DEFAULT_STEPS, reconstruct_batch
from rsd_sci.report.document import SETS


@dataclasses.dataclass
class EvalSettings:
    n_samples: int = 32          # images per set for the distribution distances (at most the test set's)
    slices: int = 4              # held-out slices reconstructed by every method
    posterior_samples: int = 2   # A-DPS samples per slice (their std is the uncertainty map)
    adps_steps: int = DEFAULT_STEPS["adps"]             # A-DPS noise levels
    generator_steps: int = DEFAULT_STEPS["generator"]   # generator-prior Adam iterations
    sampler_steps: int = 18      # the teacher sampler's noise levels
    batch: int = 8               # slices or samples per batch
    seed: int = 0
    device: str = "cpu"


def offsets_of(ms, n: int) -> np.ndarray:
    """The first n samples' normalisation offsets (n,) float32."""
    return np.asarray(ms.column("offset", n), np.float32)


def clean_targets(ms, n: int) -> np.ndarray:
    """The first n clean targets (n, h, w) float32 in the metrics' view (`Measurement.metric_view`)."""
    family = family_of(ms.info.operator)
    return family.metric_view(np.asarray(ms.column("targets", n)[:, 0], np.float32), offsets_of(ms, n))


def _stage(progress, description: str):
    return nullcontext(None) if progress is None else progress(description)


def load_models(run_dir: Path, device) -> dict[str, Model]:
    return {kind: load_model(run_dir / f"{kind}.safetensors", device, kind=kind)
            for kind in ("teacher", "generator") if (run_dir / f"{kind}.safetensors").is_file()}


def image_sets(models: dict, train_set, test_set, settings: EvalSettings, progress=None) -> dict[str, np.ndarray]:
    """{"reference", "data", "teacher", "generator"} magnitudes (n, H, W), those that exist."""
    any_model = next(iter(models.values()))
    family, dev = any_model.family, settings.device
    n = settings.n_samples if test_set is None else min(settings.n_samples, len(test_set))
    sets = {}
    if test_set is not None and "targets" in test_set.keys():
        sets["reference"] = clean_targets(test_set, n)
    m = family.measure(load_batch(train_set, range(min(n, len(train_set))), dev))
    with torch.no_grad():
        data = to_output(any_model, m.network_input().float().cpu())
    sets["data"] = family.metric_view(data, offsets_of(train_set, len(data)))
    heldout_offset = offsets_of(test_set or train_set, 1)[0]
    for kind, sampler in (("teacher", "heun"), ("generator", "onestep")):
        if kind in models:
            with _stage(progress, f"Sampling ({kind})") as update:
                x = draw_samples(models[kind], n, sampler, steps=settings.sampler_steps, batch=settings.batch,
                                 seed=settings.seed, device=dev, progress=update)
            sets[kind] = family.metric_view(to_output(models[kind], x), heldout_offset)
    if "reference" in sets:   # fastMRI-sourced sets: targets at the reconstruction size, centre-crop the rest
        from rsd_sci.metrics.image import center_crop

        h, w = sets["reference"].shape[-2:]
        sets |= {k: np.ascontiguousarray(center_crop(v, (h, w))) for k, v in sets.items()
                 if v.shape[-2] >= h and v.shape[-1] >= w}
    return sets


def distribution_distances(sets: dict[str, np.ndarray], seed: int = 0, names=SETS) -> dict:
    """Each set of `names` against sets["reference"]: {"set": {"patch_sliced_wasserstein", "scales",
    "power_spectrum_distance", "spread", "n"}} and {"reference": {"spread", "n"}} (`sample_spread`: how
    much a set's images differ from one another, the clean set's being the goal); a set whose image
    size differs from the reference's is left out."""
    from rsd_sci.metrics.distribution import patch_sliced_wasserstein, power_spectrum_distance, sample_spread

    ref = torch.from_numpy(sets["reference"])[:, None]
    out = {"reference": {"spread": sample_spread(ref), "n": len(ref)}} if len(ref) > 1 else {}
    for name in names:
        if name not in sets or sets[name].shape[1:] != sets["reference"].shape[1:]:
            continue
        x = torch.from_numpy(sets[name])[:, None]
        sw = patch_sliced_wasserstein(x, ref, patch=min(8, *ref.shape[-2:]), seed=seed)
        out[name] = {"patch_sliced_wasserstein": sw["mean"], "scales": sw["scales"],
                     "power_spectrum_distance": power_spectrum_distance(x, ref),
                     "spread": sample_spread(x) if len(x) > 1 else None, "n": len(x)}
    return out


def methods_for(family, models: dict) -> list[str]:
    """The family's baselines, then A-DPS (a teacher of clean images) and the generator prior (generator)."""
    learned = [m for m, kind in (("adps", "teacher"), ("generator", "generator")) if kind in models]
    if not family.teacher_is_clean_prior:   # blur, down-sampling: the teacher models A x
        learned = [m for m in learned if m != "adps"]
    return list(family.baselines) + learned


def reconstructions(models: dict, heldout, settings: EvalSettings, progress=None, methods=None) -> dict:
    """{method: {"mean": (S, h, w), "std": (S, h, w) or None, "seconds_per_slice", "n_samples", "steps"}}
    for `methods` (default: `methods_for` the data and models), in the metrics' view (`Measurement.metric_view`) and,
    when the set has targets, centre-cropped to their size (fastMRI-sourced sets: images at the k-space
    size, targets at the reconstruction size)."""
    from rsd_sci.metrics.image import center_crop

    family = family_of(heldout.info.operator)
    S = min(settings.slices, len(heldout))
    offsets = offsets_of(heldout, S)
    size = clean_targets(heldout, 1).shape[-2:] if "targets" in heldout.keys() else None

    def view(images: torch.Tensor, offset) -> np.ndarray:
        a = family.metric_view(images.abs().float().numpy() if images.is_complex() else images.float().numpy(), offset)
        return np.ascontiguousarray(center_crop(a, size) if size is not None else a)

    out = {}
    for method in methods or methods_for(family, models):
        loaded = {"adps": models.get("teacher"), "generator": models.get("generator")}.get(method)
        k = settings.posterior_samples if method == "adps" else 1
        steps = {"adps": settings.adps_steps, "generator": settings.generator_steps}.get(method)
        means, stds = [], []
        with _stage(progress, f"Reconstructing ({method})") as update:
            start = time.perf_counter()
            for first in range(0, S, settings.batch):
                idx = range(first, min(S, first + settings.batch))
                m = family.measure(load_batch(heldout, idx, settings.device))
                mean, std = reconstruct_batch(method, m, loaded, n_samples=k, seed=settings.seed, steps=steps)
                means.append(mean.detach().cpu()[:, 0])
                stds.append(None if std is None else std.detach().cpu()[:, 0])
                if update is not None:
                    update(idx[-1] + 1, S)
            seconds = (time.perf_counter() - start) / S
        out[method] = {"mean": view(torch.cat(means), offsets),
                       "std": None if stds[0] is None else view(torch.cat(stds), 0.0),   # a spread: no offset
                       "seconds_per_slice": seconds, "n_samples": k, "steps": steps}
    return out


def reconstruction_metrics(recons: dict, targets: np.ndarray, sources: np.ndarray) -> dict:
    """fastMRI-semantics metrics per method over the source volumes (`rsd_sci.metrics.image`)."""
    from rsd_sci.metrics.image import summarize, volume_metrics

    names = [s.decode() if isinstance(s, bytes) else str(s) for s in sources]
    volumes = {name: [i for i, s in enumerate(names) if s == name] for name in dict.fromkeys(names)}
    out = {}
    for method, r in recons.items():
        per_volume = {name: volume_metrics(targets[idx], r["mean"][idx]) for name, idx in volumes.items()}
        out[method] = summarize(per_volume) | {k: r[k] for k in ("seconds_per_slice", "n_samples", "steps")}
    return out


def evaluate_run(run_dir: str | Path, settings: EvalSettings | None = None, data_dir: str | Path | None = None,
                 progress: Callable[[str], object] | None = None) -> dict:
    """Evaluate the models of `run_dir` on its measurement set (default RUN/data, or `data_dir`); writes
    RUN/samples/*.npy, RUN/eval/reconstructions.h5 and RUN/eval/metrics.json and returns the metrics.

    progress(description) -> a context manager yielding update(done, total) or None (see cli.progress).
    """
    from rsd_sci.errors import InputError

    run_dir, settings = Path(run_dir), settings or EvalSettings()
    models = load_models(run_dir, settings.device)
    if not models:
        raise InputError(run_dir, "holds no teacher.safetensors or generator.safetensors to evaluate")
    train_set, test_set = open_measurement_set(data_dir or run_dir / "data")
    heldout = test_set or train_set
    sets = image_sets(models, train_set, test_set, settings, progress)
    recons = reconstructions(models, heldout, settings, progress)
    S = min(settings.slices, len(heldout))
    has_targets = "targets" in heldout.keys()
    targets = clean_targets(heldout, S) if has_targets else None
    results = {"run": str(run_dir), "modality": heldout.info.modality, "operator": heldout.info.operator,
               "settings": dataclasses.asdict(settings), "slices": S,
               "models": {k: {"path": str(m.path), "selected_step": m.meta.get("selected_step")}
                          for k, m in models.items()},
               "distribution": distribution_distances(sets, settings.seed) if "reference" in sets else None,
               "reconstruction": (reconstruction_metrics(recons, targets, heldout.column("source", S))
                                  if has_targets else None),
               "seconds_per_slice": {m: r["seconds_per_slice"] for m, r in recons.items()}}
    if "teacher" in models:
        results["teacher_sampler"] = {"steps": settings.sampler_steps,
                                      "stop_sigma": models["teacher"].family.default_stop_sigma}
    _write(run_dir, sets, recons, targets, results)
    return results


def _write(run_dir: Path, sets: dict, recons: dict, targets, results: dict) -> None:
    import h5py

    from rsd_sci.metrics.image import NON_FINITE_CAUSE

    (run_dir / "samples").mkdir(parents=True, exist_ok=True)
    (run_dir / "eval").mkdir(parents=True, exist_ok=True)
    for name, images in sets.items():
        with atomic_path(run_dir / "samples" / f"{name}.npy") as tmp:
            np.save(tmp, images)
    with atomic_path(run_dir / "eval" / "reconstructions.h5") as tmp, h5py.File(tmp, "w") as f:
        if targets is not None:
            f.create_dataset("targets", data=targets)
        for method, r in recons.items():
            group = f.create_group(method)
            group.create_dataset("mean", data=r["mean"])
            if r["std"] is not None:
                group.create_dataset("std", data=r["std"])
            group.attrs.update(seconds_per_slice=r["seconds_per_slice"], n_samples=r["n_samples"])
    with atomic_path(run_dir / "eval" / "metrics.json") as tmp:
        tmp.write_text(finite_json(results, NON_FINITE_CAUSE))
