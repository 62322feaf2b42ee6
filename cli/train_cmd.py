"""`rsd-sci train`: learn a prior from corrupted measurements: the teacher, then the one-step generator."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from cli.config_file import merge_config
from cli.errors import fail, guarded


@guarded
def train(
    ctx: typer.Context,
    modality: str = typer.Option("mri", help="mri | ct | image"),
    stage: str = typer.Option("all", help="all (teacher, then distillation) | teacher | distill."),
    teacher: Optional[str] = typer.Option(None, help="Distill: a teacher.safetensors (default RUN/teacher.safetensors)."),
    data: Optional[str] = typer.Option(None, help="A measurement set, or a raw fastMRI/NIfTI/LoDoPaB/DICOM "
                                                  "folder (built into RUN/data once). Default: the phantoms."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default runs/<modality>-<corruption>). "
                                                  "The same command again resumes."),
    preset: Optional[str] = typer.Option(None, help="tiny | quality | small | base | fastmri (default tiny on CPU, "
                                                    "small on CUDA; quality: the tiny network trained longer; "
                                                    "fastmri: the published fastMRI network and rates)."),
    steps: Optional[int] = typer.Option(None, help="Teacher steps (default: the preset's)."),
    batch: Optional[int] = typer.Option(None, help="Global batch (all processes together)."),
    lr: Optional[float] = typer.Option(None, help="Teacher learning rate after warm-up."),
    distill_steps: Optional[int] = typer.Option(None, help="Distillation iterations (default: the preset's)."),
    alpha: Optional[float] = typer.Option(None, help="Distill: SiD's alpha (1.2)."),
    sigma_init: Optional[float] = typer.Option(None, help="Distill: the generator's input noise level (2.5)."),
    t_max: Optional[float] = typer.Option(None, help="Distill: t ~ U[0, t_max/1000] in the generator loss (800)."),
    loss_space: Optional[str] = typer.Option(None, help="Distill: the generator loss compared through the "
                                             "teacher's projection (projected), on full images (full), or auto "
                                             "(full for MRI and CT, projected otherwise; the measured winners)."),
    sigma_floor: Optional[float] = typer.Option(None, help="Distill: no noise level below this in the generator "
                                                "loss (preset's; 0: none)."),
    fake_updates: Optional[int] = typer.Option(None, help="Distill: fake-score updates per generator update "
                                               "(preset's)."),
    fake_warmup: Optional[int] = typer.Option(None, help="Distill: first iterations that train the fake score "
                                              "only, the generator frozen (preset's)."),
    gan_weight: Optional[float] = typer.Option(None, help="Distill: weight of a critic of real against synthetic "
                                               "measurements in the generator loss (preset's; 0: none)."),
    adm_weight: Optional[float] = typer.Option(None, help="Distill: weight of a critic of the teacher's against "
                                               "the fake score's predictions in the generator loss (preset's; "
                                               "0: none)."),
    g_lr: Optional[float] = typer.Option(None, help="Distill: generator learning rate (preset's)."),
    fake_lr: Optional[float] = typer.Option(None, help="Distill: fake-score learning rate (preset's)."),
    evaluate: bool = typer.Option(True, "--eval/--no-eval", help="Stage all: end with samples, reconstructions of "
                                  "held-out slices, metrics and RUN/report.md (or skip them)."),
    eval_slices: Optional[int] = typer.Option(None, help="Held-out slices every method reconstructs (preset's: "
                                                         "tiny 8, quality and small 32)."),
    adps_steps: Optional[int] = typer.Option(None, help="The evaluation's A-DPS noise levels (300; fewer: "
                                             "quicker, rougher)."),
    generator_steps: Optional[int] = typer.Option(None, help="The evaluation's generator-prior iterations (200)."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Steps between checkpoints (200); may change "
                                                   "when resuming."),
    loader_workers: Optional[int] = typer.Option(None, help="Processes that read the training batches ahead of "
                                                 "the step (default 4 on CUDA, 0 on the CPU: read in the "
                                                 "training process); may change when resuming."),
    device: str = typer.Option("auto", help="auto | cpu | cuda"),
    precision: str = typer.Option("auto", help="Training's network arithmetic: auto (bf16 autocast on CUDA, and for "
                                  "the distillation and MRI's teacher on CPUs with AVX512-BF16 or AMX; else "
                                  "float32) | bf16 | float32."),
    seed: int = typer.Option(0, help="Seed of weights, batches and every random draw."),
    accel: Optional[float] = typer.Option(None, help="MRI acceleration R (default 4)."),
    center_fraction: Optional[float] = typer.Option(None, help="MRI fully sampled centre fraction (0.08)."),
    mask: Optional[str] = typer.Option(None, help="MRI mask: random | equispaced | equispaced_fraction | "
                                                   "gaussian | poisson."),
    coils: Optional[int] = typer.Option(None, help="Phantom MRI: simulated coils (1)."),
    views: Optional[int] = typer.Option(None, help="CT: views kept of 180 (20)."),
    corruption: Optional[str] = typer.Option(None, help="Image: noise | blur | inpaint | downsample."),
    sigma_n: Optional[str] = typer.Option(None, help="Noise std (normalised units) or 'auto'."),
    size: Optional[int] = typer.Option(None, help="Phantom size (64) or resample file images."),
    n_train: Optional[int] = typer.Option(None, help="Phantoms: training images (256)."),
    n_test: Optional[int] = typer.Option(None, help="Phantoms: held-out images (32)."),
    p: Optional[float] = typer.Option(None, help="Inpaint: probability a pixel is missing (0.5)."),
    config: Optional[Path] = typer.Option(None, help="YAML file of option values (flags override)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved configuration and exit."),
) -> None:
    """Train the diffusion teacher on corrupted measurements only (Ambient losses), distil it into a
    one-step generator of clean images (Restoration Score Distillation), then evaluate both on the held-out
    test set and write RUN/report.md (stage all; --no-eval skips the evaluation)."""
    # the flags as TrainConfig's settings and the data-make options it takes (`make`); --config fills in
    # those not typed
    settings = dict(modality=modality, stage=stage, data=data, teacher=teacher, preset=preset, steps=steps,
                    batch=batch, lr=lr, device=device, precision=precision, seed=seed, distill_steps=distill_steps,
                    alpha=alpha, sigma_init=sigma_init, t_max=t_max, loss_space=loss_space, sigma_floor=sigma_floor,
                    fake_updates=fake_updates, fake_warmup=fake_warmup, gan_weight=gan_weight, adm_weight=adm_weight,
                    g_lr=g_lr,
                    fake_lr=fake_lr, evaluate=evaluate, eval_slices=eval_slices, adps_steps=adps_steps,
                    generator_steps=generator_steps, checkpoint_every=checkpoint_every,
                    loader_workers=loader_workers)
    make = dict(accel=accel, center_fraction=center_fraction, mask=mask, coils=coils, size=size, views=views,
                sigma_n=sigma_n, corruption=corruption, p=p, n_train=n_train, n_test=n_test)
    values = merge_config(ctx, settings | make | dict(out=out, dry_run=dry_run, config=config), config)
    requested = _requested(ctx, values, config, settings, make)
    import torch
    import yaml

    from rsd_sci.config import run_config

    run_dir = Path(values["out"] or f"runs/{_default_name(values)}")
    from rsd_sci.data.output_guard import check_outputs

    check_outputs([run_dir], {"--data": values["data"]})   # the run writes into RUN (RUN/data too)
    cfg = run_config(run_dir, requested, torch.cuda.is_available())
    if values["dry_run"]:
        typer.echo(yaml.safe_dump(__import__("dataclasses").asdict(cfg), sort_keys=False), nl=False)
        return
    _run(cfg, run_dir, adapt_batch="batch" not in requested)


def _run(cfg, run_dir: Path, adapt_batch: bool) -> None:
    import signal

    import torch

    from cli.errors import Terminated, release_warnings, stopped
    from cli.progress import progress_bar
    from rsd_sci.engine.loop import StageInterrupted, TrainingStopped
    from rsd_sci.apps.train import DATA_BUILD, run_training
    from rsd_sci.data.partial_set import resume_note
    from rsd_sci.engine.runlog import read_log

    def bars(description: str):   # training has begun once its input is read: the held warnings show now
        if description != DATA_BUILD:
            release_warnings()
        return progress_bar(description)

    try:
        written = run_training(cfg, run_dir, bars, adapt_batch)
    except (Terminated, KeyboardInterrupt) as stop:   # outside a stage: e.g. while it built RUN/data
        stopped(stop, resume_note(run_dir / "data"))
    except StageInterrupted as e:   # exit 128 + the signal's number (SIGINT 130, SIGTERM 143)
        typer.echo(f"rsd-sci: {e}", err=True)
        raise typer.Exit(128 + getattr(signal.Signals, e.signal_name or "SIGINT"))
    except TrainingStopped as e:
        typer.echo(f"rsd-sci: error: {e}", err=True)
        raise typer.Exit(1)
    except torch.cuda.OutOfMemoryError:
        fail(f"batch {cfg.batch} does not fit in GPU memory at preset {cfg.preset}; lower --batch")
    records = read_log(run_dir / "log.jsonl")
    for stage, key, signal in (("teacher", "teacher", "heldout"), ("distill", "generator", "selection_signal")):
        if key in written:
            typer.echo(_summary(stage, written[key], [r for r in records if r.get("stage") == stage], signal))
    if "report" in written:
        from rsd_sci.report.document import headline

        typer.echo(f"report: {written['report']}")
        for line in headline(written["metrics"]):
            typer.echo(f"  {line}")


def _summary(stage: str, path, lines: list[dict], signal: str) -> str:
    """One line: the model written, its last step and loss, and its held-out signal: the last one for the
    teacher, the lowest one (the exported snapshot) for the generator."""
    last = lines[-1] if lines else {}
    held = [(r[signal], r["step"]) for r in lines if r.get(signal) is not None]
    text = f"{stage}: {path} (step {last.get('step')}, loss {last.get('loss', float('nan')):.4g}"
    if held and signal == "selection_signal":
        value, step = min(held)
        text += f", selection signal {value:.4g} at iteration {step}: exported"
    elif held:
        text += f", held-out loss {held[-1][0]:.4g}"
    return text + ")"


def _requested(ctx, values: dict, config: Path | None, settings: dict, make: dict) -> dict:
    """The options the user gave (command line or --config), in TrainConfig's shape: of `settings` and,
    under "make", of `make` (the names the command hands over)."""
    from_file = set()
    if config is not None:
        import yaml

        from_file = {str(k).replace("-", "_") for k in (yaml.safe_load(Path(config).read_text()) or {})}
    given = {name for name in values
             if name in from_file or getattr(ctx.get_parameter_source(name), "name", None) == "COMMANDLINE"}
    requested = {k: values[k] for k in settings if k in given}
    make = {k: values[k] for k in make if k in given and values[k] is not None}
    if "sigma_n" in make:
        from cli.data_cmd import _parse_sigma

        make["sigma_n"] = _parse_sigma(make["sigma_n"])
    requested["make"] = make
    return requested


def _default_name(values: dict) -> str:
    from rsd_sci.data.make import MakeSpec

    given = {k: values[k] for k in ("modality", "accel", "views", "corruption") if values.get(k) is not None}
    return MakeSpec(**given).run_name()
