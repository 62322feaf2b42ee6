"""`rsd-sci reconstruct`: posterior (A-DPS, generator prior) or classical reconstructions of a measurement
set's test split, of fastMRI files or of NIfTI volumes (what is written: `rsd_sci.apps.reconstruct_files`).

    rsd-sci reconstruct --input SET --out recon.h5 --method cg-sense
    rsd-sci reconstruct --input file.h5 --out recon.h5 --method adps --model RUN
    rsd-sci reconstruct --input DIR --out OUTDIR --method generator --model RUN   # one file per input file
    rsd-sci reconstruct --input t1.nii.gz --out recon.nii.gz --method cg-sense --accel 4
    rsd-sci reconstruct --input ct.nii.gz --out fbp.nii.gz --method fbp --views 60
    torchrun --nproc_per_node 4 $(which rsd-sci) reconstruct --input DIR --out OUTDIR ...   # files shared

NIfTI volumes (MRI magnitudes or CT in HU) are sliced along their third axis and simulated exactly as
`data make --source nifti` does, with the model's operator or, for baselines, --accel/--mask/
--center-fraction (MRI) or --views (CT); the output has the input's shape, affine and units. The image
modality (denoising, deblurring, ...) needs a model of that modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.errors import fail, guarded


@guarded
def reconstruct(
    input: Path = typer.Option(..., "--input", help="A measurement-set folder (its test split, or train if it has "
                                                     "none), a fastMRI file, a NIfTI volume (.nii, .nii.gz), or a "
                                                     "folder of fastMRI or NIfTI files."),
    out: Path = typer.Option(..., "--out", help="Measurement set or fastMRI file: an .h5 file; NIfTI file: a .nii(.gz) "
                                                 "file (std in OUT_std.nii.gz when --n-samples > 1); folder: a "
                                                 "folder (one file per input, same names)."),
    method: str = typer.Option(..., "--method", help="adps | generator (need --model) | zero-filled | cg-sense | "
                                                      "l1-wavelet (MRI) | fbp | tv (CT) | corrupted (image)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Run directory or model file (adps: teacher, "
                                                                "generator: generator)."),
    modality: Optional[str] = typer.Option(None, "--modality", help="NIfTI: mri | ct | image (default: the "
                                           "model's; without a model the method's: fbp/tv ct, else mri)."),
    accel: float = typer.Option(4.0, "--accel", help="Without --model, fully sampled fastMRI and NIfTI MRI: "
                                                     "acceleration R."),
    mask: str = typer.Option("random", "--mask", help="... mask kind (random | equispaced | equispaced_fraction | "
                                                      "gaussian | poisson)."),
    center_fraction: float = typer.Option(0.08, "--center-fraction", help="... fully sampled centre fraction."),
    views: int = typer.Option(20, "--views", help="Without --model, NIfTI CT: views kept of 180."),
    virtual_coils: Optional[int] = typer.Option(None, "--virtual-coils", help="fastMRI multi-coil: SVD coil "
                                                "compression to N (default: as the model was trained)."),
    n_samples: int = typer.Option(1, "--n-samples", help="adps: posterior samples (mean written, and their std); "
                                                         "generator: restarts (a spread, not posterior samples)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="adps: noise levels (300); generator: Adam "
                                        "iterations (200); cg-sense 30, l1-wavelet 50, tv 100 iterations."),
    batch: int = typer.Option(8, "--batch", help="Slices per batch."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, help="Seed (adps sample j uses seed + j; the generator's restarts)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing output."),
) -> None:
    """Reconstruct measurements with a learned prior or a classical baseline and write OUT.

    Under torchrun the files of a folder are shared by the processes; a set's batches are gathered on rank 0.
    """
    for name, value in (("--n-samples", n_samples), ("--batch", batch), ("--views", views)):
        if value < 1:
            fail(f"{name} must be at least 1 (got {value})")
    if steps is not None and steps < 1:
        fail(f"--steps must be at least 1 (got {steps})")
    if seed < 0:
        fail(f"--seed must be non-negative (got {seed})")
    from rsd_sci.errors import InputError
    from rsd_sci.apps import reconstruct_files as fr
    from rsd_sci.posterior.reconstruct import LEARNED, METHODS

    if method not in METHODS:
        fail(f"unknown --method {method!r} ({', '.join(METHODS)})")
    if method in LEARNED and model is None:
        fail(f"--method {method} needs --model (a run directory or model file)")
    from rsd_sci.data.output_guard import check_outputs
    from rsd_sci.engine.model import resolve_model_path

    kind, files = fr.input_kind(input)
    targets = fr.output_paths(input, out, kind, files)
    model_kind = "teacher" if method == "adps" else None   # from a run directory: the teacher for A-DPS
    model_path = None if model is None else resolve_model_path(model, model_kind)
    outputs = fr.all_outputs(targets, kind, n_samples)
    check_outputs(outputs, {"--input": input, "--model": model_path})   # before "exists": --force never helps
    existing = [t for t in outputs if t.exists()]
    if existing and not force:
        raise InputError(existing[0], "exists (use --force)")

    from rsd_sci.engine import distributed

    info = distributed.init_distributed(device)
    try:
        distributed.barrier()  # every rank has checked the outputs before any is written
        _run(kind, input, out, files, targets, info, method=method, model_path=model_path, modality=modality,
             flags=dict(accel=accel, mask=mask, center_fraction=center_fraction, views=views,
                        virtual_coils=virtual_coils),
             n_samples=n_samples, seed=seed, steps=steps, batch=batch)
    finally:
        distributed.cleanup()


def _run(kind, input, out, files, targets, info, method, model_path, modality, flags, **job_options) -> None:
    from cli.progress import progress_bar
    from rsd_sci.engine import distributed
    from rsd_sci.engine.model import load_model
    from rsd_sci.errors import InputError
    from rsd_sci.apps import reconstruct_files as fr
    from rsd_sci.data.sources import SOURCE_MODALITIES
    from rsd_sci.data.volume_samples import check_fits_model
    from rsd_sci.posterior.reconstruct import check_method

    loaded = None if model_path is None else load_model(model_path, info.device)
    job = fr.Job(method=method, loaded=loaded, device=info.device, **job_options)
    with progress_bar(f"Reconstructing ({method})") as update:
        if kind == "set":
            n = fr.reconstruct_measurement_set(input, out, job, update, info, modality)
            if info.is_main:
                typer.echo(f"wrote {n} {method} reconstructions to {out}")
            return
        (fastmri_modality,) = SOURCE_MODALITIES["fastmri"]
        if kind == "fastmri" and modality not in (None, fastmri_modality):
            raise InputError(input, f"fastMRI files hold mri data, not --modality {modality}")
        data_modality = fastmri_modality if kind == "fastmri" else fr.modality_of(method, loaded, modality)
        check_method(method, data_modality, loaded)  # before any work
        options = fr.data_options(loaded, modality=data_modality, **flags)
        if kind == "nifti" and loaded is not None:  # every file, from its header, before any is written
            for path in files:
                check_fits_model(path, options, loaded.meta["operator"])
        write = fr.reconstruct_nifti_file if kind == "nifti" else fr.reconstruct_fastmri_file
        mine = fr.my_share(list(zip(files, targets)), info)
        for i, (path, target) in enumerate(mine):
            write(path, target, job, options)
            update(i + 1, len(mine))
    distributed.barrier()
    if info.is_main:
        typer.echo(f"wrote {len(files)} {method} reconstruction file(s) to {out}"
                   + (f" ({info.world_size} processes)" if info.distributed else ""))
