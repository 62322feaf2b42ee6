"""`rsd-sci sample`: draw images from a generator (one step) or a teacher (Heun / Ambient sampler)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.errors import fail, guarded


@guarded
def sample(
    model: Path = typer.Option(..., "--model", help="generator.safetensors, teacher.safetensors, or a run directory."),
    n: int = typer.Option(16, "-n", "--n", help="Number of images."),
    out: Path = typer.Option(..., "--out", help="Output: .nii.gz/.nii (one volume), .h5, .npy or .png (a grid)."),
    sampler: str = typer.Option("onestep", help="onestep (generator) | heun | ambient (teacher)."),
    steps: int = typer.Option(18, help="Teacher samplers: noise levels (18 = 35 network calls)."),
    truncate: Optional[bool] = typer.Option(None, "--truncate/--no-truncate",
                                            help="Teacher: stop at the data's noise level (default: Tweedie teachers)."),
    stop_sigma: Optional[float] = typer.Option(
        None, "--stop-sigma", help="Teacher: return the x0-prediction at the last level >= this instead of "
                                   "integrating to 0.002 (default 0.1 for Ambient teachers: MRI, CT, inpainting; else 0 = no stop)."),
    batch: int = typer.Option(16, help="Images per network batch."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    seed: int = typer.Option(0, help="Seed of the noise; sample i is the same for any --batch or -n."),
    split: bool = typer.Option(False, "--split", help="NIfTI/PNG: one file per image (<name>_0000...)."),
    keep_complex: bool = typer.Option(False, "--complex", help="Complex images: keep (real, imaginary) channels "
                                                               "instead of the magnitude."),
    scale: Optional[float] = typer.Option(None, help="Data scale a of x' = a·x + b: write (x' − b)/a instead of "
                                                     "normalised units."),
    offset: float = typer.Option(0.0, help="Data offset b (with --scale)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing output."),
) -> None:
    """Generate images from a trained model and write them to OUT."""
    for name, value in (("-n", n), ("--batch", batch), ("--steps", steps)):
        if value < 1:
            fail(f"{name} must be at least 1 (got {value})")
    if seed < 0:
        fail(f"--seed must be non-negative (got {seed})")
    if stop_sigma is not None and stop_sigma < 0:
        fail(f"--stop-sigma must be at least 0 (got {stop_sigma:g})")
    from rsd_sci.data.image_output import output_targets
    from rsd_sci.engine.model import load_model, resolve_model_path
    from rsd_sci.engine.sampling import check_sample_memory, draw_samples, model_kind_for, to_output

    model_path = resolve_model_path(model, model_kind_for(sampler))
    # a bad suffix, the model's own file or an existing output fails before any work
    output_targets(out, n, split, force, inputs={"--model": model_path})
    from cli.progress import progress_bar
    from rsd_sci.data.image_output import write_samples
    from rsd_sci.engine.distributed import resolve_device

    dev = resolve_device(device)
    loaded = load_model(model_path, dev)
    check_sample_memory(loaded, n)
    with progress_bar(f"Sampling ({sampler})") as update:
        images = draw_samples(loaded, n, sampler, steps, truncate, min(batch, n), seed, dev, update, stop_sigma)
    arrays = to_output(loaded, images, keep_complex, scale, offset)
    if loaded.kind == "teacher" and stop_sigma is None:
        stop_sigma = loaded.family.default_stop_sigma   # the metadata names the level the sampler used
    meta = dict(model=str(loaded.path), kind=loaded.kind, sampler=sampler, steps=steps, seed=seed, n=n,
                stop_sigma=stop_sigma, units="data" if scale is not None else "normalised",
                operator=loaded.meta["operator"])
    written = write_samples(out, arrays, split=split, metadata=meta, overwrite=force)
    typer.echo(f"wrote {n} {sampler} samples to {written[0] if len(written) == 1 else f'{len(written)} files'}")
