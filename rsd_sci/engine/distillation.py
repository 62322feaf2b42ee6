"""Phase 2 in a run directory: distil the teacher into a one-step generator (`train --stage distill`).

Iteration s (global batch B, each process its shard):
    fake-score update on the operators of training samples global_batch_indices(n, B, s, seed + 1)
    generator update on those of global_batch_indices(n, B, s, seed + 2)
with every random draw keyed by (seed, s, key, stream), the keys s·2B + b (fake) and s·2B + B + b
(generator), so 1 and N processes agree (`rsd_sci.distill.draws.KeyedDraws`). Only the operators of the
training samples are used (masks, maps, σ_n): the distillation never reads a measurement.

The signal logged as `heldout_sw` needs no clean data (METHOD.md): the multi-scale patch sliced
Wasserstein distance between R(A(x_g) + noise) and R(y) for the first HELDOUT_SAMPLES held-out
measurements and their operators, x_g from the generator's EMA with fixed draws; R is the family's
data image (zero-filled adjoint for MRI, FBP for CT, the image itself otherwise). The generator loss is
signed and is no convergence signal; `fake_loss` (also logged as `loss`, the value the loop's NaN check
reads; it is NaN when every generator sample was dropped) shows whether the fake score keeps up.

Model selection: the exported generator is the EMA at the evaluation with the lowest `heldout_sw`
(`rsd_sci.engine.best_snapshot`; its iteration and value are in the file's metadata as
`selected_step` and `heldout_sw`), the EMA at the end when no evaluation was finite. The candidates
are the scheduled evaluations (every `heldout_every` iterations) and the last iteration, never the end
of an interrupted session, so a resumed run exports what a straight one does.

Writes RUN/checkpoints/distill/state.pt and RUN/generator.safetensors (the selected EMA generator with
the teacher's metadata, the distillation settings and the teacher's operator bank).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Callable

import torch

from rsd_sci import __version__
from rsd_sci.config import TrainConfig
from rsd_sci.data.batches import global_batch_indices, load_batch
from rsd_sci.data.measurement_set import open_measurement_set
from rsd_sci.distill.distiller import Distiller, DistillSettings, generate
from rsd_sci.distill.draws import KeyedDraws
from rsd_sci.distill.losses import measure
from rsd_sci.engine import checkpoint, distributed
from rsd_sci.engine.best_snapshot import BestSnapshot
from rsd_sci.engine.ema import EMA
from rsd_sci.engine.loop import run_stage
from rsd_sci.engine.operator_bank import bank_metadata, bank_tensors, operator_bank
from rsd_sci.engine.runlog import RunLog
from rsd_sci.engine.model import load_model
from rsd_sci.engine.teacher import HELDOUT_SAMPLES, peak_memory_gb
from rsd_sci.errors import InputError
from rsd_sci.keyed_random import Stream
from rsd_sci.measurement import Measurement

log = logging.getLogger(__name__)
HELDOUT_STEP = -3            # the key "step" of the held-out draws: the same at every evaluation


def settings_of(cfg: TrainConfig, bf16: bool) -> DistillSettings:
    return DistillSettings(alpha=cfg.alpha, sigma_init=cfg.sigma_init, t_max=cfg.t_max, bf16=bf16)


def heldout_images(G, m: Measurement, seed: int, sigma_init: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(R(A(x_g) + noise), R(y)) for a held-out batch m: the generator's synthetic measurements and the
    real ones, reconstructed alike, in network channels."""
    draws = KeyedDraws(m.index, seed, HELDOUT_STEP)
    with torch.no_grad():
        x_g = generate(G, m, draws, sigma_init).float()
        y = measure(m.op, m.to_image(x_g), m.sigma_n, lambda shape: draws.normal(shape, Stream.HELDOUT_MEASURE))
        return m.with_y(y).network_input(), m.network_input()


def heldout_distance(G, m: Measurement, seed: int, sigma_init: float) -> float:
    """The patch sliced Wasserstein distance of `heldout_images` (mean over scales)."""
    from rsd_sci.metrics.distribution import patch_sliced_wasserstein

    fake, real = heldout_images(G, m, seed, sigma_init)
    patch = min(8, *real.shape[-2:])
    return float(patch_sliced_wasserstein(fake, real, patch=patch, n_patches=2048, seed=seed)["mean"])


def teacher_path(cfg: TrainConfig, run_dir: Path) -> Path:
    path = Path(cfg.teacher) if cfg.teacher else run_dir / "teacher.safetensors"
    if not path.is_file():
        raise InputError(path, "no teacher to distil: train one first (--stage teacher or all) or pass --teacher")
    return path


def train_distill(cfg: TrainConfig, run_dir: Path, data_dir: Path, info: distributed.DistInfo,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Distil (or resume distilling) the teacher of `cfg` in `run_dir`; returns RUN/generator.safetensors."""
    source = teacher_path(cfg, run_dir)
    teacher = load_model(source, info.device, kind="teacher", require_bank=False)
    meta = teacher.meta
    if meta["modality"] != cfg.modality:
        raise InputError(source, f"is a {meta['modality']} teacher, not --modality {cfg.modality}")
    train_set, test_set = open_measurement_set(data_dir)
    if train_set.info.operator != teacher.spec:
        raise InputError(source, "was trained on another operator than the data in " + str(data_dir))
    fake, G = copy.deepcopy(teacher.denoiser).requires_grad_(True), copy.deepcopy(teacher.denoiser).requires_grad_(True)
    fake.train()
    G.train()
    ema = EMA(G, cfg.ema_half_life_images)
    best = BestSnapshot(ema.module)
    fake_opt = torch.optim.Adam(fake.parameters(), lr=cfg.fake_lr, betas=(0.0, 0.999))
    g_opt = torch.optim.Adam(G.parameters(), lr=cfg.g_lr, betas=(0.0, 0.999))
    settings = settings_of(cfg, bf16=info.device.type == "cuda")
    distiller = Distiller(teacher, fake, G, fake_opt, g_opt, settings,
                          fake_train=distributed.wrap_ddp(fake, info), generator_train=distributed.wrap_ddp(G, info))
    state_path = run_dir / "checkpoints" / "distill" / "state.pt"
    parts = dict(fake=fake, generator=G, ema=ema, fake_opt=fake_opt, g_opt=g_opt, best=best)
    start = checkpoint.resume_stage(state_path, **parts)
    if start:
        log.info("resumed the distillation at iteration %d from %s", start, state_path)
    heldout_set = test_set or train_set
    heldout = teacher.family.measure(load_batch(heldout_set, range(min(HELDOUT_SAMPLES, len(heldout_set))),
                                                info.device))
    B, n = cfg.batch, len(train_set)
    clock = {"t": time.perf_counter()}
    last_sw: dict[int, float] = {}   # heldout_sw of an off-schedule last iteration, for the export

    def ops_and_draws(step: int, part: int):
        rows = torch.from_numpy(global_batch_indices(n, B, step, cfg.seed + 1 + part))
        keys = step * 2 * B + part * B + torch.arange(B)
        rows, keys = distributed.shard(rows, info), distributed.shard(keys, info)
        m = teacher.family.measure(load_batch(train_set, rows.tolist(), info.device))
        return m, KeyedDraws(keys.to(info.device), cfg.seed, step)

    def step_fn(step: int) -> dict:
        (m_fake, draws_fake), (m_gen, draws_gen) = ops_and_draws(step, 0), ops_and_draws(step, 1)
        m = distiller.iteration(m_fake, m_gen, draws_fake, draws_gen)
        ema.update(G, (step + 1) * B, B)
        now = time.perf_counter()
        fake_loss = float(distributed.all_reduce_mean(torch.tensor(m["fake_loss"], device=info.device)))
        g_loss = float(distributed.all_reduce_mean(torch.tensor(m["g_loss"], device=info.device)))
        metrics = dict(loss=fake_loss if torch.isfinite(torch.tensor(g_loss)) else float("nan"),
                       fake_loss=fake_loss, g_loss=g_loss, fake_grad_norm=m["fake_grad_norm"],
                       dropped=m["fake_dropped"] + m["g_dropped"], lr=cfg.g_lr,
                       images_per_s=B / max(now - clock["t"], 1e-9), memory_gb=peak_memory_gb(info.device))
        clock["t"] = now
        scheduled = (step + 1) % cfg.heldout_every == 0
        if scheduled or step + 1 == cfg.distill_steps:
            metrics["heldout_sw"] = heldout_distance(ema.module, heldout, cfg.seed, settings.sigma_init)
            if scheduled:   # the end of a session off the schedule is no candidate: a resumed run must select
                best.offer(ema.module, metrics["heldout_sw"], step + 1)   # as a straight one (export below)
            else:
                last_sw[step + 1] = metrics["heldout_sw"]
        return metrics

    def save_fn(steps_done: int) -> None:
        checkpoint.save_stage_state(state_path, steps_done, **parts)

    run_stage(step_fn=step_fn, total_steps=cfg.distill_steps, start_step=start, save_fn=save_fn,
              checkpoint_every=cfg.checkpoint_every, is_main=info.is_main, progress=progress,
              log=RunLog(run_dir / "log.jsonl", info.is_main), stage="distill", log_every=cfg.log_every,
              checkpoint_path=state_path, sync_stop=lambda flag: distributed.any_rank(flag, info))
    out = run_dir / "generator.safetensors"
    if info.is_main:
        bank = meta["bank"] or operator_bank(heldout_set)
        candidates = [(best.value, best.step, best.module)] if best.step else []
        if cfg.distill_steps % cfg.heldout_every:   # the last iteration, off the schedule, is a candidate too
            last = last_sw.get(cfg.distill_steps)   # computed again only when this invocation ran no step
            if last is None:
                last = heldout_distance(ema.module, heldout, cfg.seed, settings.sigma_init)
            candidates += [(last, cfg.distill_steps, ema.module)] if math.isfinite(last) else []
        value, step, module = min(candidates, key=lambda c: c[0], default=(None, cfg.distill_steps, ema.module))
        export_generator(out, module, meta, cfg, source, bank, selected=dict(selected_step=step, heldout_sw=value))
    distributed.barrier()
    return out


def export_generator(path: Path, G, teacher_meta: dict, cfg: TrainConfig, source: Path, bank: dict,
                     selected: dict | None = None) -> None:
    """The EMA generator with the teacher's metadata (operator, network, ...), its settings, the bank
    and `selected` (selected_step, heldout_sw: which EMA snapshot this is)."""
    meta = {k: v for k, v in teacher_meta.items() if k not in ("bank", "format", "rsd_sci_version")}
    meta |= dict(kind="generator", teacher=str(source), sigma_init=cfg.sigma_init, alpha=cfg.alpha, t_max=cfg.t_max,
                 config=dataclasses.asdict(cfg), rsd_sci=__version__) | (selected or {})
    checkpoint.export_safetensors(path, G.state_dict() | bank_tensors(bank), meta | bank_metadata(bank))
