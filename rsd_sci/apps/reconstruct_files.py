"""Whole inputs reconstructed into output files (`rsd-sci reconstruct`), and how torchrun shares them.

    input                                   output
    measurement set (test split, else       one .h5: `reconstruction` (S, H, W) magnitudes (MRI) or real
      train)                                  images (CT) in the set's normalised units, `std` when
                                              n_samples > 1, the set's `targets`, `source`, `slice_index`
    fastMRI file / folder of them           fastMRI files of the same names: `reconstruction` cropped to
                                              the file's reconstruction size, in the file's units; `std`
    NIfTI file / folder of them             NIfTI volumes of the same names: the input's shape, affine
      (.nii, .nii.gz)                         and header, float32 in the input's units
                                              (`rsd_sci.data.volume_samples`); with n_samples > 1 the
                                              std as a second file NAME_std.nii(.gz) beside it

How files are simulated or undersampled (`data_options`): with a model, as the model's data were made
(its operator spec: mask, coils, views, corruption; its config's `make` options: noise, the resampling
`size` when it was trained on a raw source folder, the seed); without one, from the baseline flags.
Fully sampled fastMRI files take that mask seeded by the file name; files with their own `mask` are
used as measured. `load_scan` reads one file as such samples (a `Scan`) and takes images back to its units.

Under torchrun (W processes, `rsd_sci.engine.distributed`): the files of a folder are dealt round-robin
(rank r takes files r, r + W, ...) and each rank writes its own; a measurement set's batches are dealt
the same way (batch j to rank j mod W) and gathered on rank 0 (`all_gather_object`), which writes the
one file. Every random draw is keyed by slice index and seed, never by rank, so the outputs equal a
one-process run's.

The program (`rsd-sci reconstruct` calls these two and prints):

    plan = plan_outputs(input, out, method, model, n_samples, force)   # reconstruct_plan: every check first
    done = reconstruct_inputs(plan, method, device, progress=progress_bar, seed=0)   # rank 0: {"count", "processes"}
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from rsd_sci.data.sources import SOURCE_MODALITIES
from rsd_sci.data.volume_samples import check_fits_model
from rsd_sci.disk_space import check_free_space
from rsd_sci.engine import distributed
from rsd_sci.apps.reconstruct_plan import Plan
from rsd_sci.engine.model import load_model
from rsd_sci.errors import InputError
from rsd_sci.posterior.reconstruct import check_method


@dataclasses.dataclass
class Job:
    """What to run on every batch (see `rsd_sci.posterior.reconstruct.reconstruct_batch`)."""

    method: str
    loaded: object = None            # a `rsd_sci.diffusion.model.Model` (learned methods) or None
    n_samples: int = 1
    seed: int = 0
    steps: int | None = None
    batch: int = 8                   # slices per batch
    device: torch.device | str = "cpu"


# -- options ---------------------------------------------------------------------------------------------
def modality_of(method: str | None, loaded=None, requested: str | None = None) -> str:
    """The data's modality: the model's (a conflicting `requested` is an InputError), else `requested`,
    else the family whose baseline it is (fbp, tv: ct), else data make's default (mri)."""
    from rsd_sci.data.make import MakeSpec
    from rsd_sci.measurement import FAMILIES, family_of_baseline

    if requested is not None and requested not in FAMILIES:
        raise InputError(None, f"unknown --modality {requested!r} ({', '.join(FAMILIES)})")
    if loaded is not None:
        family = loaded.meta["operator"]["family"]
        if requested is not None and requested != family:
            raise InputError(loaded.path, f"is a {family} model: --modality {requested} conflicts with it")
        return family
    return requested or family_of_baseline(method) or MakeSpec.modality


def data_options(loaded=None, **flags) -> dict:
    """`MakeSpec` options for file inputs: the model's (see the module docstring) or, with no model,
    `flags` (modality, accel, mask, center_fraction, views, virtual_coils) as given."""
    if loaded is None:
        return {k: v for k, v in flags.items() if v is not None}
    from rsd_sci.data.make import make_options

    cfg = loaded.meta.get("config") or {}
    make = cfg.get("make") or {}
    out = make_options(loaded.meta["operator"]) | dict(seed=int(cfg.get("seed") or 0), sigma_n=make.get("sigma_n"))
    if cfg.get("data") is not None and make.get("size"):  # phantoms: `size` is the phantom size
        out["size"] = int(make["size"])
    virtual_coils = flags.get("virtual_coils") or make.get("virtual_coils")   # fastMRI coil compression
    return out | ({"virtual_coils": virtual_coils} if virtual_coils else {})


def my_share(items: list, info=None) -> list:
    """This rank's items: r, r + W, ... (all of them in one process)."""
    if info is None or not info.distributed:
        return list(items)
    return list(items)[info.rank::info.world_size]


# -- one file as samples ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Scan:
    """One fastMRI or NIfTI file as the samples `data make` builds from it (`load_scan`), and the way
    back to the file's units. volume: the reader's record (`rsd_sci.data.volume_samples.fastmri_volume`
    or `nifti_volume`): the operator spec, the per-slice samples and what undoes their normalisation."""

    path: Path
    volume: dict

    def __len__(self) -> int:
        return len(self.volume["samples"])

    @property
    def spec(self) -> dict:
        return self.volume["spec"]

    def batch(self, indices=None, device: torch.device | str = "cpu") -> dict:
        """The samples `indices` (default all) collated into a batch (`rsd_sci.data.batches.collate`)."""
        from rsd_sci.data.batches import collate

        samples = self.volume["samples"]
        return collate([samples[i] for i in (range(len(samples)) if indices is None else indices)], device)

    def measurement(self, indices=None, device: torch.device | str = "cpu"):
        """The samples `indices` (default all) as a `rsd_sci.measurement.Measurement`, normalised units."""
        from rsd_sci.measurement import family_of

        return family_of(self.spec).measure(self.batch(indices, device))

    def to_file_units(self, images: torch.Tensor, std: bool = False) -> np.ndarray:
        """Images of every sample (S, 1, H, W) in normalised units (complex for MRI) -> float32 in the
        file's units: fastMRI magnitudes (S, h, w) cropped to the reconstruction size; NIfTI slices of the
        volume (its slice count, in-plane shape and units). std=True: a std map (no offset)."""
        from rsd_sci.data.volume_samples import to_file_magnitudes, to_volume_units

        if "file_scale" in self.volume:   # fastMRI: magnitudes have no offset, std and mean alike
            return to_file_magnitudes(images, self.volume["file_scale"], self.volume["recon_size"])
        return to_volume_units(images, self.volume, std=std)


def load_scan(path: Path, options: dict) -> Scan:
    """A fastMRI or NIfTI file with `data_options` (a fastMRI file's mask: theirs, or the options' mask
    seeded by its name; NIfTI: simulated as `data make --source nifti`)."""
    from rsd_sci.data.nifti import is_nifti_name
    from rsd_sci.data.sources import SOURCE_MODALITIES
    from rsd_sci.data.volume_samples import fastmri_volume, nifti_volume

    path = Path(path)
    if is_nifti_name(path):
        return Scan(path, nifti_volume(path, options))
    if options.get("modality") not in (None, *SOURCE_MODALITIES["fastmri"]):
        raise InputError(path, f"fastMRI files hold mri data, not {options['modality']}")
    mask_spec = dict(kind=options.get("mask", "random"), acceleration=options.get("accel", 4.0),
                     center_fraction=options.get("center_fraction", 0.08))
    return Scan(path, fastmri_volume(path, mask_spec, options.get("virtual_coils")))


# -- batches -----------------------------------------------------------------------------------------------
def reconstruct_samples(samples_of: Callable[[list[int]], dict], n: int, spec: dict, job: Job,
                        update: Callable[[int, int], None] | None = None, info=None):
    """Reconstruct samples 0..n−1 in batches of job.batch: (means, stds) lists of CPU tensors
    (B, 1, H, W) in order (stds None entries for one sample). With a distributed `info` the batches are
    dealt round-robin and gathered: rank 0 gets the lists, the other ranks (None, None)."""
    from rsd_sci.measurement import family_of
    from rsd_sci.posterior.reconstruct import check_method, check_model_fits, reconstruct_batch

    family = family_of(spec)
    check_method(job.method, family.name, job.loaded)  # before any work
    if job.loaded is not None:
        check_model_fits(job.loaded, spec)
    batches = [list(range(s, min(n, s + job.batch))) for s in range(0, n, job.batch)]
    mine = my_share(range(len(batches)), info)
    done = {}
    for k, j in enumerate(mine):
        mean, std = reconstruct_batch(job.method, family.measure(samples_of(batches[j])), job.loaded,
                                      job.n_samples, job.seed, job.steps)
        done[j] = (mean.detach().cpu(), None if std is None else std.detach().cpu())
        if update is not None:
            update(k + 1, len(mine))
    if info is not None and info.distributed:
        import torch.distributed as dist

        parts = [None] * info.world_size
        dist.all_gather_object(parts, done)
        if not info.is_main:
            return None, None
        done = {j: r for part in parts for j, r in part.items()}
    ordered = [done[j] for j in range(len(batches))]
    return [m for m, _ in ordered], [s for _, s in ordered]


# -- writers -----------------------------------------------------------------------------------------------
def reconstruct_measurement_set(input: Path, out: Path, job: Job, update=None, info=None,
                                modality: str | None = None) -> int:
    """Reconstruct a measurement set's test split (train if none) into one .h5 (rank 0 writes);
    returns the number of slices. `modality`, when given, must be the set's."""
    import h5py

    from rsd_sci.data.atomic import atomic_path
    from rsd_sci.data.batches import load_batch
    from rsd_sci.data.measurement_set import open_measurement_set
    from rsd_sci.posterior.reconstruct import DEFAULT_STEPS

    train, test = open_measurement_set(input)
    ms = test if test is not None else train
    if modality is not None and modality != ms.info.modality:
        raise InputError(input, f"holds {ms.info.modality} data, not --modality {modality}")
    means, stds = reconstruct_samples(lambda idx: load_batch(ms, idx, job.device), len(ms), ms.info.operator, job,
                                      update, info)
    if means is None:
        return len(ms)
    mean = torch.cat(means)[:, 0]
    recon = (mean.abs() if mean.is_complex() else mean).float().numpy()
    chunks = (1, *recon.shape[1:])
    copies = 3 if stds[0] is not None else 2   # reconstruction, std, targets
    check_free_space(out.parent, recon.nbytes * copies, f"writing the reconstruction {recon.shape}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=recon, chunks=chunks)
        if stds[0] is not None:
            f.create_dataset("std", data=torch.cat(stds)[:, 0].float().numpy(), chunks=chunks)
        if "targets" in ms.keys():
            f.create_dataset("targets", data=np.asarray(ms.column("targets"))[:, 0], chunks=chunks)
        f.create_dataset("source", data=ms.column("source").astype(object), dtype=h5py.string_dtype())
        f.create_dataset("slice_index", data=ms.column("slice_index"))
        f.attrs.update(_attrs(job) | dict(split=ms.info.split, input=str(input), modality=ms.info.modality,
                       steps=DEFAULT_STEPS.get(job.method, 0) if job.steps is None else job.steps,
                       units="normalised (the measurement set's x' = scale·x + offset); MRI: magnitudes"))
    return len(ms)


def reconstruct_fastmri_file(path: Path, target: Path, job: Job, options: dict) -> None:
    """One fastMRI file -> a fastMRI reconstruction file (`std` dataset when n_samples > 1)."""
    import h5py

    from rsd_sci.data.atomic import atomic_path
    from rsd_sci.data.fastmri import write_reconstruction

    scan = load_scan(path, options)
    means, stds = reconstruct_samples(lambda idx: scan.batch(idx, job.device), len(scan), scan.spec, job)
    recon = scan.to_file_units(torch.cat(means))
    attrs = _attrs(job) | dict(source=path.name, units="the file's (reconstruction_rss) units")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        write_reconstruction(tmp, recon, attrs=attrs, overwrite=True)
        if stds[0] is not None:
            std = scan.to_file_units(torch.cat(stds), std=True)
            with h5py.File(tmp, "a") as f:
                f.create_dataset("std", data=std, chunks=(1, *std.shape[1:]))


def reconstruct_nifti_file(path: Path, target: Path, job: Job, options: dict) -> None:
    """One NIfTI volume -> a NIfTI volume in the input's geometry and units (and NAME_std beside it)."""
    from rsd_sci.data.volume_samples import std_path, write_volume

    scan = load_scan(path, options)
    means, stds = reconstruct_samples(lambda idx: scan.batch(idx, job.device), len(scan), scan.spec, job)
    description = f"rsd-sci reconstruct --method {job.method}"
    target.parent.mkdir(parents=True, exist_ok=True)
    if stds[0] is not None:  # the std first: the reconstruction's presence marks a finished volume
        write_volume(std_path(target), scan.to_file_units(torch.cat(stds), std=True), scan.volume, overwrite=True,
                     description=description + " (std)")
    write_volume(target, scan.to_file_units(torch.cat(means)), scan.volume, overwrite=True, description=description)


def _attrs(job: Job) -> dict:
    return dict(method=job.method, model="" if job.loaded is None else str(job.loaded.path), seed=job.seed,
                n_samples=job.n_samples)


# -- the program -------------------------------------------------------------------------------------------
def reconstruct_inputs(plan: Plan, method: str, device: str = "auto", modality: str | None = None,
                       flags: dict | None = None, progress=None, **job_options) -> dict | None:
    """Reconstruct every input of `plan` with `method` (under torchrun, each process its share) and write
    the outputs; rank 0 gets {"count": slices of a set or files, "processes": W}, the other ranks None.

    modality: --modality (files; a set's must match); flags: the baseline flags of `data_options`;
    progress(description) -> a context manager yielding update(done, total) or None (see cli.progress);
    job_options: `Job`'s n_samples, seed, steps, batch.
    """
    info = distributed.init_distributed(device)
    try:
        distributed.barrier()  # every rank has checked the outputs before any is written
        count = _reconstruct(plan, info, method, modality, flags or {}, progress, job_options)
        if plan.kind != "set":
            distributed.barrier()
    finally:
        distributed.cleanup()
    return {"count": count, "processes": info.world_size} if info.is_main else None


def _reconstruct(plan: Plan, info, method: str, modality: str | None, flags: dict, progress, job_options) -> int:
    loaded = None if plan.model_path is None else load_model(plan.model_path, info.device)
    job = Job(method=method, loaded=loaded, device=info.device, **job_options)
    with _stage(progress, f"Reconstructing ({method})") as update:
        if plan.kind == "set":
            return reconstruct_measurement_set(plan.input, plan.out, job, update, info, modality)
        (fastmri_modality,) = SOURCE_MODALITIES["fastmri"]
        if plan.kind == "fastmri" and modality not in (None, fastmri_modality):
            raise InputError(plan.input, f"fastMRI files hold mri data, not --modality {modality}")
        data_modality = fastmri_modality if plan.kind == "fastmri" else modality_of(method, loaded, modality)
        check_method(method, data_modality, loaded)  # before any work
        options = data_options(loaded, modality=data_modality, **flags)
        if plan.kind == "nifti" and loaded is not None:  # every file, from its header, before any is written
            for path in plan.files:
                check_fits_model(path, options, loaded.meta["operator"])
        write = reconstruct_nifti_file if plan.kind == "nifti" else reconstruct_fastmri_file
        mine = my_share(list(zip(plan.files, plan.targets)), info)
        for i, (path, target) in enumerate(mine):
            write(path, target, job, options)
            if update is not None:
                update(i + 1, len(mine))
    return len(plan.files)


def _stage(progress, description: str):
    return contextlib.nullcontext(None) if progress is None else progress(description)
