"""`rsd-sci report RUN`: RUN/report.md with its figures: samples beside clean and corrupted images,
reconstructions with error and uncertainty maps, metric bars, training curves.

    rsd-sci report runs/mri-r4                 # evaluates first when RUN/eval/metrics.json is missing
    rsd-sci report runs/mri-r4 --recompute --slices 32
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.errors import fail, guarded


@guarded
def report(
    run: Path = typer.Argument(..., help="A run directory (made by `rsd-sci train`)."),
    recompute: bool = typer.Option(False, "--recompute", help="Evaluate again even if RUN/eval/metrics.json exists."),
    slices: Optional[int] = typer.Option(None, "--slices", help="Held-out slices every method reconstructs "
                                                                "(default: the run's eval_slices)."),
    n_samples: int = typer.Option(32, "--n-samples", help="Images per set for the distribution distances."),
    adps_steps: Optional[int] = typer.Option(None, "--adps-steps", help="A-DPS noise levels (default: the run's, "
                                                                        "else 300; fewer: faster, rougher)."),
    generator_steps: Optional[int] = typer.Option(None, "--generator-steps", help="Generator-prior iterations "
                                                                                  "(default: the run's, else 200)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    seed: Optional[int] = typer.Option(None, help="Seed of the samples and A-DPS (default: the run's)."),
) -> None:
    """Write RUN/report.md and RUN/figures/*.png, evaluating the run on its held-out test set if needed."""
    for name, value in (("--slices", slices), ("--n-samples", n_samples), ("--adps-steps", adps_steps),
                        ("--generator-steps", generator_steps)):
        if value is not None and value < 1:
            fail(f"{name} must be at least 1 (got {value})")
    from rsd_sci.config import TrainConfig
    from rsd_sci.errors import InputError

    if not run.is_dir():
        raise InputError(run, "no such run directory")
    if not (run / "config.yaml").is_file():
        raise InputError(run, "holds no config.yaml: not a run directory made by `rsd-sci train`")
    cfg = TrainConfig.from_yaml(run / "config.yaml")
    from rsd_sci.data.output_guard import check_outputs

    check_outputs([run], {"the run's data": cfg.data})   # RUN/report.md, figures/, eval/ (and data/)
    metrics_path = run / "eval" / "metrics.json"
    if recompute or not metrics_path.is_file():
        from cli.progress import progress_bar
        from rsd_sci.apps.resolve import prepare_data
        from rsd_sci.engine.distributed import resolve_device
        from rsd_sci.apps.train import eval_settings, evaluate_and_report

        data_dir = prepare_data(cfg.data, cfg.modality, cfg.make, cfg.seed, run)
        dev = str(resolve_device(device))
        settings = eval_settings(cfg, dev, n_samples=n_samples, slices=slices, seed=seed,
                                 adps_steps=adps_steps, generator_steps=generator_steps)
        written = evaluate_and_report(cfg, run, data_dir, dev, progress_bar, settings)
        path, metrics = written["report"], written["metrics"]
    else:
        from rsd_sci.data.finite_json import read_finite_json
        from rsd_sci.report.document import write_report

        path, metrics = write_report(run), read_finite_json(metrics_path)
    from rsd_sci.report.document import headline

    typer.echo(f"report: {path}")
    for line in headline(metrics):
        typer.echo(f"  {line}")
