"""A training run in its directory: the resolved config, the data (built once), then the stages.

    RUN/.lock           while a run works here (`rsd_sci.data.run_lock`: a second one is refused)
    RUN/config.yaml     the resolved configuration (a re-run with the same flags resumes)
    RUN/data/           the measurement set, when built from phantoms or a raw source folder
    RUN/log.jsonl       one line per logged step, with its stage
    RUN/checkpoints/    training state per stage (atomic; resumed from)
    RUN/teacher.safetensors
    RUN/generator.safetensors
    RUN/samples/, RUN/eval/, RUN/report.md, RUN/figures/   stage "all" unless cfg.evaluate is False

Stages: "teacher", "distill" (the teacher from RUN or cfg.teacher) or "all" (both, in order, then the
evaluation on the held-out test set and the report: `rsd_sci.engine.evaluation`, `rsd_sci.report`).
Under torchrun, rank 0 writes the config and builds the data while the others wait; the evaluation runs
on rank 0 alone, after the process group is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rsd_sci.config import TrainConfig
from rsd_sci.data.resolve import prepare_data
from rsd_sci.engine import distributed
from rsd_sci.data.run_lock import RunLock


def run_training(cfg: TrainConfig, run_dir: Path, progress_factory: Callable[[str], object] | None = None) -> dict:
    """Run (or resume) the stages of `cfg`; returns {"data": dir, "teacher": path, "generator": path,
    "report": path, "metrics": dict} (those made; the last two on rank 0 only).

    progress_factory(description) -> a context manager yielding a progress(done, total) callback.
    """
    info = distributed.init_distributed(cfg.device)
    with RunLock(run_dir, enabled=info.is_main):   # one run per folder; rank 0 holds it for all ranks
        try:
            if info.is_main:   # the config only once the data are there: a refused start leaves no run behind
                with _progress(progress_factory, "Building the measurement set") as update:
                    data_dir = prepare_data(cfg.data, cfg.modality, cfg.make, cfg.seed, run_dir, update)
                check_batch(cfg.batch, data_dir)
                cfg.to_yaml(run_dir / "config.yaml")
            distributed.barrier()
            data_dir = prepare_data(cfg.data, cfg.modality, cfg.make, cfg.seed, run_dir)  # exists by now
            written = {"data": data_dir}
            if cfg.stage in ("teacher", "all"):
                from rsd_sci.engine.teacher import train_teacher

                with _progress(progress_factory if info.is_main else None, "Training the teacher") as update:
                    written["teacher"] = train_teacher(cfg, run_dir, data_dir, info, update)
            if cfg.stage in ("distill", "all"):
                from rsd_sci.engine.distillation import train_distill

                with _progress(progress_factory if info.is_main else None, "Distilling the generator") as update:
                    written["generator"] = train_distill(cfg, run_dir, data_dir, info, update)
        finally:
            distributed.cleanup()
        if cfg.stage == "all" and cfg.evaluate and info.is_main:
            written |= evaluate_and_report(cfg, run_dir, data_dir, str(info.device), progress_factory)
    return written


def check_batch(batch: int, data_dir: Path) -> None:
    """InputError unless the global batch is at most the training split's size: a larger batch only
    repeats samples within a step, and a mistyped one (1000000) would allocate until the machine swaps."""
    from rsd_sci.data.measurement_set import open_measurement_set
    from rsd_sci.errors import InputError

    n = len(open_measurement_set(data_dir)[0])
    if batch > n:
        raise InputError(data_dir, f"--batch {batch} is larger than its {n} training measurements; use at most {n}")


def eval_settings(cfg: TrainConfig, device: str, **changes):
    """The run's `EvalSettings`: cfg's held-out slices, A-DPS levels, generator-prior iterations and seed
    where set (else EvalSettings' defaults), with `changes` (a non-None value replaces the run's)."""
    from rsd_sci.engine.evaluation import EvalSettings

    chosen = dict(slices=cfg.eval_slices, adps_steps=cfg.adps_steps, generator_steps=cfg.generator_steps,
                  seed=cfg.seed) | {k: v for k, v in changes.items() if v is not None}
    return EvalSettings(device=device, **{k: v for k, v in chosen.items() if v is not None})


def evaluate_and_report(cfg: TrainConfig, run_dir: Path, data_dir: Path, device: str,
                        progress_factory: Callable[[str], object] | None = None, settings=None) -> dict:
    """The evaluation and RUN/report.md: {"report", "metrics"}. settings: an `EvalSettings` (default:
    `eval_settings(cfg, device)`)."""
    from rsd_sci.engine.evaluation import evaluate_run
    from rsd_sci.report.document import write_report

    if settings is None:
        settings = eval_settings(cfg, device)
    metrics = evaluate_run(run_dir, settings, data_dir, progress_factory)
    return {"report": write_report(run_dir), "metrics": metrics}


def _progress(factory, description):
    import contextlib

    if factory is None:
        return contextlib.nullcontext(None)
    return factory(description)
