"""`rsd-sci reconstruct`: posterior (A-DPS, generator prior) or classical reconstructions of a measurement
set's test split or of fastMRI files.

    rsd-sci reconstruct --input SET --out recon.h5 --method cg-sense
    rsd-sci reconstruct --input file.h5 --out recon.h5 --method adps --model RUN
    rsd-sci reconstruct --input DIR --out OUTDIR --method generator --model RUN   # one file per input file
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.errors import fail, guarded


@guarded
def reconstruct(
    input: Path = typer.Option(..., "--input", help="A measurement-set folder (its test split, or train if it has "
                                                     "none), a fastMRI file, or a folder of fastMRI files."),
    out: Path = typer.Option(..., "--out", help="Measurement set or fastMRI file: an .h5 file; folder of fastMRI "
                                                 "files: a folder (one file per input, same names)."),
    method: str = typer.Option(..., "--method", help="adps | generator (need --model) | zero-filled | cg-sense | "
                                                      "l1-wavelet (MRI) | fbp | tv (CT)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Run directory or model file (adps: teacher, "
                                                                "generator: generator)."),
    accel: float = typer.Option(4.0, "--accel", help="Fully sampled fastMRI files without --model: acceleration R."),
    mask: str = typer.Option("random", "--mask", help="... mask kind (random | equispaced | equispaced_fraction | "
                                                      "gaussian | poisson)."),
    center_fraction: float = typer.Option(0.08, "--center-fraction", help="... fully sampled centre fraction."),
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
    """Reconstruct measurements with a learned prior or a classical baseline and write OUT."""
    for name, value in (("--n-samples", n_samples), ("--batch", batch)):
        if value < 1:
            fail(f"{name} must be at least 1 (got {value})")
    if steps is not None and steps < 1:
        fail(f"--steps must be at least 1 (got {steps})")
    if seed < 0:
        fail(f"--seed must be non-negative (got {seed})")
    from rsd_sci.data.fastmri import is_fastmri_file
    from rsd_sci.data.measurement_set import is_measurement_set
    from rsd_sci.errors import InputError
    from rsd_sci.posterior.reconstruct import LEARNED, METHODS

    if method not in METHODS:
        fail(f"unknown --method {method!r} ({', '.join(METHODS)})")
    if method in LEARNED and model is None:
        fail(f"--method {method} needs --model (a run directory or model file)")
    if not input.exists():
        fail(f"{input}: no such file or folder")
    if input.is_dir() and is_measurement_set(input):
        files = None
    elif input.is_file() and is_fastmri_file(input):
        files = [input]
    elif input.is_dir() and any(is_fastmri_file(p) for p in input.glob("*.h5")):
        files = sorted(p for p in input.glob("*.h5") if is_fastmri_file(p))
    else:
        raise InputError(input, "is neither a measurement set (a folder with train.h5 and card.yaml) nor a "
                                "fastMRI file or folder of them")
    targets = [out] if files is None or input.is_file() else [out / p.name for p in files]
    existing = [t for t in targets if t.exists()]
    if existing and not force:
        raise InputError(existing[0], "exists (use --force)")
    if files is None and out.is_dir():
        raise InputError(out, "is a folder: a measurement set is written to one .h5 file")

    from cli.progress import progress_bar
    from rsd_sci.engine.distributed import resolve_device
    from rsd_sci.engine.sampling import load_model

    dev = resolve_device(device)
    loaded = None
    if model is not None:
        loaded = load_model(model, dev, "heun" if method == "adps" else None)
    opts = dict(method=method, loaded=loaded, n_samples=n_samples, seed=seed, steps=steps, batch=batch, device=dev)
    with progress_bar(f"Reconstructing ({method})") as update:
        if files is None:
            n = _measurement_set(input, out, update, **opts)
            typer.echo(f"wrote {n} {method} reconstructions to {out}")
        else:
            mask_spec = dict(kind=mask, acceleration=accel, center_fraction=center_fraction)
            for i, (path, target) in enumerate(zip(files, targets)):
                _fastmri_file(path, target, mask_spec, virtual_coils, **opts)
                update(i + 1, len(files))
            typer.echo(f"wrote {len(files)} {method} reconstruction file(s) to {out}")


def _batches(n: int, size: int):
    return [list(range(s, min(n, s + size))) for s in range(0, n, size)]


def _run(samples_of, n, spec, method, loaded, n_samples, seed, steps, batch, device, update=None):
    """Reconstruct n samples in batches: (means, stds) lists of CPU tensors (B, 1, H, W)."""
    from rsd_sci.posterior.reconstruct import check_method, check_model_fits, reconstruct_batch

    check_method(method, spec["family"], loaded)  # before any work
    if loaded is not None and method in ("adps", "generator"):
        check_model_fits(loaded, spec)
    means, stds = [], []
    for idx in _batches(n, batch):
        mean, std = reconstruct_batch(method, samples_of(idx), spec, loaded, n_samples, seed, steps)
        means.append(mean.detach().cpu())
        stds.append(None if std is None else std.detach().cpu())
        if update is not None:
            update(idx[-1] + 1, n)
    return means, stds


def _measurement_set(input, out, update, method, loaded, n_samples, seed, steps, batch, device) -> int:
    import h5py
    import numpy as np
    import torch

    from rsd_sci.data.atomic import atomic_path
    from rsd_sci.data.batches import load_batch
    from rsd_sci.data.measurement_set import open_measurement_set
    from rsd_sci.posterior.reconstruct import DEFAULT_STEPS

    train, test = open_measurement_set(input)
    ms = test if test is not None else train
    spec = ms.info.operator
    means, stds = _run(lambda idx: load_batch(ms, idx, device), len(ms), spec, method, loaded, n_samples, seed,
                       steps, batch, device, update)
    mean = torch.cat(means)[:, 0]
    recon = (mean.abs() if mean.is_complex() else mean).float().numpy()
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=recon, chunks=(1, *recon.shape[1:]))
        if stds[0] is not None:
            f.create_dataset("std", data=torch.cat(stds)[:, 0].float().numpy(), chunks=(1, *recon.shape[1:]))
        if "targets" in ms.keys():
            f.create_dataset("targets", data=np.asarray(ms.column("targets"))[:, 0], chunks=(1, *recon.shape[1:]))
        f.create_dataset("source", data=ms.column("source").astype(object), dtype=h5py.string_dtype())
        f.create_dataset("slice_index", data=ms.column("slice_index"))
        f.attrs.update(method=method, model="" if loaded is None else str(loaded.path), seed=seed,
                       n_samples=n_samples, steps=DEFAULT_STEPS.get(method, 0) if steps is None else steps, split=ms.info.split,
                       input=str(input), modality=ms.info.modality,
                       units="normalised (the measurement set's x' = scale·x + offset); MRI: magnitudes")
    return len(ms)


def _fastmri_file(path, target, mask_spec, virtual_coils, method, loaded, n_samples, seed, steps, batch, device):
    import h5py
    import torch

    from rsd_sci.data.atomic import atomic_path
    from rsd_sci.data.batches import collate
    from rsd_sci.data.fastmri import write_reconstruction
    from rsd_sci.errors import InputError
    from rsd_sci.posterior.reconstruct import fastmri_volume, to_file_magnitudes

    if loaded is not None:
        op = loaded.meta["operator"]
        if op["family"] != "mri":
            raise InputError(loaded.path, f"a {op['family']} model cannot reconstruct mri data")
        mask_spec = op["mask"]
        if virtual_coils is None:
            virtual_coils = (loaded.meta.get("config") or {}).get("make", {}).get("virtual_coils")
    vol = fastmri_volume(path, mask_spec, virtual_coils)
    samples = vol["samples"]
    means, stds = _run(lambda idx: collate([samples[i] for i in idx], device), len(samples), vol["spec"], method,
                       loaded, n_samples, seed, steps, batch, device)
    recon = to_file_magnitudes(torch.cat(means), vol["file_scale"], vol["recon_size"])
    attrs = dict(method=method, model=None if loaded is None else str(loaded.path), seed=seed, n_samples=n_samples,
                 source=path.name, units="the file's (reconstruction_rss) units")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        write_reconstruction(tmp, recon, attrs=attrs, overwrite=True)
        if stds[0] is not None:
            std = to_file_magnitudes(torch.cat(stds).to(torch.complex64), vol["file_scale"], vol["recon_size"])
            with h5py.File(tmp, "a") as f:
                f.create_dataset("std", data=std, chunks=(1, *std.shape[1:]))
