"""`rsd-sci data make`: build a train/test measurement set from phantoms, fastMRI, NIfTI, LoDoPaB or DICOM."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.config_file import merge_config
from cli.errors import Terminated, guarded, stopped

app = typer.Typer(help="Build and inspect measurement sets.", no_args_is_help=True)


@app.command("make")
@guarded
def make(
    ctx: typer.Context,
    out: Path = typer.Option(..., "--out", help="Output folder (train.h5, test.h5, card.yaml)."),
    modality: str = typer.Option("mri", help="mri | ct | image"),
    source: str = typer.Option("phantom", help="phantom | fastmri | nifti | lodopab | dicom"),
    input: Optional[Path] = typer.Option(None, "--input", help="Source file or folder (not for phantoms)."),
    test_input: Optional[Path] = typer.Option(None, help="Your own test files (e.g. fastMRI val); "
                                                        "otherwise volumes are split."),
    accel: float = typer.Option(4.0, help="MRI acceleration R."),
    center_fraction: float = typer.Option(0.08, help="MRI fully sampled centre fraction."),
    mask: str = typer.Option("random", help="MRI mask: random | equispaced | equispaced_fraction | "
                                             "gaussian | poisson."),
    coils: int = typer.Option(1, help="Simulated coils for phantom/NIfTI MRI (1 = single-coil)."),
    virtual_coils: Optional[int] = typer.Option(None, help="fastMRI multi-coil: SVD-compress to N coils."),
    size: Optional[int] = typer.Option(None, help="Phantom size (default 64), or resample file images."),
    views: int = typer.Option(20, help="CT: views kept of the 180-view geometry."),
    view_kind: str = typer.Option("sparse", help="CT: sparse | limited (angle)."),
    sigma_n: Optional[str] = typer.Option(None, help="Noise std in normalised units, or 'auto' to "
                                                    "estimate per slice. Default: 0, or as measured."),
    corruption: str = typer.Option("noise", help="Image: noise | blur | inpaint | downsample."),
    p: float = typer.Option(0.5, help="Inpaint: probability a pixel is missing."),
    delta: float = typer.Option(0.1, help="Inpaint: further-mask drop probability (Ambient)."),
    blur_kernel: int = typer.Option(9, help="Blur kernel size."),
    blur_std: float = typer.Option(1.5, help="Blur standard deviation (pixels)."),
    factor: int = typer.Option(2, help="Down-sampling factor."),
    n_train: Optional[int] = typer.Option(None, help="Phantoms: train images (256); files: slice cap."),
    n_test: Optional[int] = typer.Option(None, help="Phantoms: test images (32); files: slice cap."),
    test_fraction: float = typer.Option(0.2, help="Files without --test-input: share of volumes for test."),
    seed: int = typer.Option(0, help="Seed of phantoms, masks and noise."),
    workers: int = typer.Option(1, help="Processes for per-slice work (ESPIRiT)."),
    maps: str = typer.Option("torch", help="Multi-coil MRI ESPIRiT maps: torch (ours, fast, CPU or CUDA) | "
                                           "sigpy (the reference EspiritCalib, CPU)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda: where --maps torch runs."),
    force: bool = typer.Option(False, "--force", help="Replace --out if it exists."),
    config: Optional[Path] = typer.Option(None, help="YAML file of option values (flags override)."),
) -> None:
    """Build a measurement set: the corrupted data a model trains on, plus a test split with clean targets."""
    # the flags as MakeSpec's fields; --config fills in those not typed
    options = dict(modality=modality, source=source, input=input, test_input=test_input, accel=accel,
                   center_fraction=center_fraction, mask=mask, coils=coils, virtual_coils=virtual_coils, size=size,
                   views=views, view_kind=view_kind, sigma_n=sigma_n, corruption=corruption, p=p, delta=delta,
                   blur_kernel=blur_kernel, blur_std=blur_std, factor=factor, n_train=n_train, n_test=n_test,
                   test_fraction=test_fraction, seed=seed, workers=workers, maps=maps, device=device)
    values = merge_config(ctx, options | dict(out=out, force=force, config=config), config)
    from rsd_sci.data.make import MakeSpec, make_measurement_set
    from rsd_sci.data.output_guard import check_outputs
    from rsd_sci.data.partial_set import partial_folder, resume_note
    from rsd_sci.engine.distributed import resolve_device
    from rsd_sci.errors import InputError

    make_spec = MakeSpec(**{k: values[k] for k in options} | dict(
        input=None if values["input"] is None else str(values["input"]),
        test_input=None if values["test_input"] is None else str(values["test_input"]),
        sigma_n=_parse_sigma(values["sigma_n"]), device=str(resolve_device(values["device"]))))
    # --force replaces OUT, and a build that starts over empties OUT.partial: neither may hold an input
    check_outputs([values["out"], partial_folder(values["out"])], replaced=True,
                  inputs={"--input": values["input"], "--test-input": values["test_input"], "--config": config})
    from cli.progress import progress_bar

    try:
        with progress_bar("Building measurement set") as update:
            summary = make_measurement_set(make_spec, values["out"], force=values["force"], progress=update)
    except ValueError as e:  # what the physics refuses (e.g. ESPIRiT calibration too small): the input's
        raise InputError(values["input"], str(e)) from None   # doing, or the flags' when there is none
    except (Terminated, KeyboardInterrupt) as stop:
        stopped(stop, resume_note(values["out"]))
    op = summary.operator
    typer.echo(f"wrote {summary.out}: {summary.n_train} train / {summary.n_test} test samples, "
               f"measurements {tuple(summary.measurement_shape)}, operator {make_spec.describe_operator(op)}")


def _parse_sigma(value):
    from rsd_sci.errors import InputError

    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise InputError(None, f"--sigma-n takes a number or 'auto' (got {value!r})") from None
