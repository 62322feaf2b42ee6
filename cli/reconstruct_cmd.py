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
    from rsd_sci.posterior.reconstruct import LEARNED, METHODS

    if method not in METHODS:
        fail(f"unknown --method {method!r} ({', '.join(METHODS)})")
    if method in LEARNED and model is None:
        fail(f"--method {method} needs --model (a run directory or model file)")
    from cli.progress import progress_bar
    from rsd_sci.apps import reconstruct_files as rf
    from rsd_sci.apps.reconstruct_plan import plan_outputs

    plan = plan_outputs(input, out, method, model, n_samples, force)
    done = rf.reconstruct_inputs(plan, method, device, modality, progress=progress_bar,
                                 flags=dict(accel=accel, mask=mask, center_fraction=center_fraction, views=views,
                                            virtual_coils=virtual_coils),
                                 n_samples=n_samples, seed=seed, steps=steps, batch=batch)
    if done is None:   # not rank 0
        return
    if plan.kind == "set":
        typer.echo(f"wrote {done['count']} {method} reconstructions to {out}")
    else:
        typer.echo(f"wrote {done['count']} {method} reconstruction file(s) to {out}"
                   + (f" ({done['processes']} processes)" if done["processes"] > 1 else ""))
