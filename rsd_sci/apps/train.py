"""A training run in its directory: the resolved config, the data (built once), then the stages.

    RUN/.lock           while a run works here (`rsd_sci.data.run_lock`: a second one is refused)
    RUN/config.yaml     the resolved configuration (a re-run with the same flags resumes)
    RUN/data_identity.json  what identifies the measurement set the run started on
                        (`rsd_sci.data.set_identity`): a resume on a set changed since is refused
    RUN/data/           the measurement set, when built from phantoms or a raw source folder
    RUN/log.jsonl       one line per logged step, with its stage
    RUN/checkpoints/    training state per stage (atomic; resumed from)
    RUN/teacher.safetensors
    RUN/generator.safetensors
    RUN/samples/, RUN/eval/, RUN/report.md, RUN/figures/   stage "all" unless cfg.evaluate is False

Stages: "teacher", "distill" (the teacher from RUN or cfg.teacher) or "all" (both, in order, then the
evaluation on the held-out test set and the report: `rsd_sci.apps.evaluate`, `rsd_sci.report`).
Under torchrun, rank 0 builds the data while the others wait, and writes the config; the evaluation runs
on rank 0 alone, after the process group is gone.

A start refused (an InputError) before the run saved training state leaves nothing it wrote: not its
config.yaml, whose flags would make the corrected command "conflict", nor the data it built with them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Callable

from rsd_sci.apps.resolve import prepare_data
from rsd_sci.config import TrainConfig
from rsd_sci.data.atomic import atomic_path
from rsd_sci.engine import distributed
from rsd_sci.data.run_lock import RunLock
from rsd_sci.errors import InputError

log = logging.getLogger(__name__)
DATA_BUILD = "Building the measurement set"   # the progress description of the one stage that reads input


def run_training(cfg: TrainConfig, run_dir: Path, progress_factory: Callable[[str], object] | None = None,
                 adapt_batch: bool = False) -> dict:
    """Run (or resume) the stages of `cfg`; returns {"data": dir, "teacher": path, "generator": path,
    "report": path, "metrics": dict} (those made; the last two on rank 0 only).

    progress_factory(description) -> a context manager yielding a progress(done, total) callback.
    adapt_batch: cfg.batch is the preset's, not the user's: where it does not fit the data it is lowered
    (`fit_batch`) with one warning, and config.yaml records the batch used; else it is refused.
    """
    info = distributed.init_distributed(cfg.device)
    with RunLock(run_dir, enabled=info.is_main):   # one run per folder; rank 0 holds it for all ranks
        before = set(run_dir.iterdir()) if info.is_main and not (run_dir / "config.yaml").exists() else None
        try:
            if info.is_main:
                with _progress(progress_factory, DATA_BUILD) as update:
                    prepare_data(cfg.data, cfg.modality, cfg.make, cfg.seed, run_dir, update)
            distributed.barrier()
            data_dir = prepare_data(cfg.data, cfg.modality, cfg.make, cfg.seed, run_dir)  # exists by now
            check_data_identity(run_dir, data_dir, write=info.is_main)
            cfg = _fit_to_data(cfg, data_dir, info, adapt_batch)   # the same on every rank
            if info.is_main:
                cfg.to_yaml(run_dir / "config.yaml")
            written = {"data": data_dir}
            if cfg.stage in ("teacher", "all"):
                from rsd_sci.engine.teacher import train_teacher

                with _progress(progress_factory if info.is_main else None, "Training the teacher") as update:
                    written["teacher"] = train_teacher(cfg, run_dir, data_dir, info, update)
            if cfg.stage in ("distill", "all"):
                from rsd_sci.engine.distillation import train_distill

                with _progress(progress_factory if info.is_main else None, "Distilling the generator") as update:
                    written["generator"] = train_distill(cfg, run_dir, data_dir, info, update)
        except InputError:
            if before is not None and not (run_dir / "checkpoints").exists():
                _remove_added(run_dir, before)
            raise
        finally:
            distributed.cleanup()
        if cfg.stage == "all" and cfg.evaluate and info.is_main:
            written |= evaluate_and_report(cfg, run_dir, data_dir, str(info.device), progress_factory)
    return written


def _remove_added(run_dir: Path, before: set[Path]) -> None:
    """Remove what a refused fresh start added to `run_dir` (its config.yaml, RUN/data, ...)."""
    for path in set(run_dir.iterdir()) - before:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def check_data_identity(run_dir: Path, data_dir: Path, write: bool = True) -> None:
    """InputError naming the split file when the measurement set in `data_dir` is not the one the run
    started on (RUN/data_identity.json); with no record yet, `write` records it (atomically)."""
    from rsd_sci.data.set_identity import set_identity, what_changed

    record = run_dir / "data_identity.json"
    current = set_identity(data_dir)
    if not record.is_file():
        if write:
            with atomic_path(record) as tmp:
                tmp.write_text(json.dumps(current, indent=1))
        return
    try:
        recorded = json.loads(record.read_text())
    except (OSError, ValueError) as err:
        raise InputError(record, f"unreadable ({type(err).__name__}); delete it to record the set anew") from None
    if not (isinstance(recorded, dict) and all(isinstance(v, dict) for v in recorded.values())):
        raise InputError(record, "not a record of a measurement set; delete it to record the set anew")
    changed = what_changed(recorded, current)
    if changed:
        name, difference = changed
        raise InputError(data_dir / name, f"changed since this run started: {difference}; restore the set "
                                          "this run was trained on, or train on this one with a new --out")


def _fit_to_data(cfg: TrainConfig, data_dir: Path, info: distributed.DistInfo, adapt: bool) -> TrainConfig:
    """cfg with the batch `fit_batch` gives for the training split of `data_dir` (rank 0 says so when it
    lowers the preset's); InputError when the data are not of cfg's modality."""
    from rsd_sci.data.measurement_set import open_measurement_set

    train_set = open_measurement_set(data_dir)[0]
    if train_set.info.modality != cfg.modality:
        raise InputError(data_dir, f"holds {train_set.info.modality} data, not --modality {cfg.modality}")
    n = len(train_set)
    batch = fit_batch(cfg.batch, n, info.world_size, adapt, data_dir)
    if batch != cfg.batch and info.is_main:
        why = f"is larger than its {n} training measurements" if cfg.batch > n else \
            f"does not split evenly over {info.world_size} processes"
        log.warning("%s: the %s preset's batch %d %s; training with batch %d (--batch sets another)",
                    data_dir, cfg.preset, cfg.batch, why, batch)
    return dataclasses.replace(cfg, batch=batch)


def fit_batch(batch: int, n: int, world_size: int = 1, adapt: bool = False, where: Path | None = None) -> int:
    """The global batch to train with on a training split of n measurements and `world_size` processes.

    A batch fits when it is at most n (a larger one only repeats samples within a step, and a mistyped one,
    1000000, would allocate until the machine swaps) and a multiple of world_size (equal shards,
    `distributed.shard`). One that fits is kept. One that does not is refused (InputError naming `where`),
    unless `adapt` (the preset's, which the user never typed): then it becomes the largest multiple of
    world_size not above it, within [world_size, n].

        >>> fit_batch(8, 3, adapt=True), fit_batch(8, 5, world_size=2, adapt=True), fit_batch(8, 20, 3, True)
        (3, 4, 6)
    """
    most = n - n % world_size   # the largest batch every process gets an equal share of
    if most == 0:
        raise InputError(where, f"its {n} training measurement(s) are fewer than the {world_size} processes; "
                                f"launch at most {n}")
    if batch <= most and batch % world_size == 0:
        return batch
    if not adapt:
        if batch > n:
            raise InputError(where, f"--batch {batch} is larger than its {n} training measurements; "
                                    f"use at most {most}")
        raise InputError(where, f"--batch {batch} does not split evenly over {world_size} processes; "
                                f"use a multiple of {world_size}")
    return min(max(batch, world_size), most) // world_size * world_size


def eval_settings(cfg: TrainConfig, device: str, **changes):
    """The run's `EvalSettings`: cfg's held-out slices, A-DPS levels, generator-prior iterations and seed
    where set (else EvalSettings' defaults), with `changes` (a non-None value replaces the run's)."""
    from rsd_sci.apps.evaluate import EvalSettings

    chosen = dict(slices=cfg.eval_slices, adps_steps=cfg.adps_steps, generator_steps=cfg.generator_steps,
                  seed=cfg.seed) | {k: v for k, v in changes.items() if v is not None}
    return EvalSettings(device=device, **{k: v for k, v in chosen.items() if v is not None})


def evaluate_and_report(cfg: TrainConfig, run_dir: Path, data_dir: Path, device: str,
                        progress_factory: Callable[[str], object] | None = None, settings=None) -> dict:
    """The evaluation and RUN/report.md: {"report", "metrics"}. settings: an `EvalSettings` (default:
    `eval_settings(cfg, device)`)."""
    from rsd_sci.apps.evaluate import evaluate_run
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
