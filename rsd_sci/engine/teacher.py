"""Phase 1: train the diffusion teacher on corrupted measurements only (`train --stage teacher`).

One step (docs/method.md, Phase 1), for the global batch of step s (`data.batches.global_batch_indices`),
each process taking its shard:
    σ = exp(-1.2 + 1.2·ξ), ξ and the diffusion noise n keyed by (seed, s, sample index)
    Â = the Ambient further operator of each sample (keyed by its index alone: fixed per sample)
    loss = mean_b teacher_loss(member)(D, y_b, A_b, Â_b, σ_b, n_b)    (the member the data call for)
then Adam with warm-up, gradient clipping, the EMA with its ramp. The batches are read ahead of the step
by `cfg.loader_workers` processes (`rsd_sci.data.batch_stream`; 0: in this process when the step asks).
The held-out measurement-domain loss (the same loss on test-split measurements with fixed draws, EMA
weights) needs no clean data and is the model-selection signal. The run directory follows docs/architecture.md; the EMA weights are exported to
RUN/teacher.safetensors with the config, operator spec and network in their metadata.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from pathlib import Path
from typing import Callable

import torch

from rsd_sci.config import TrainConfig
from rsd_sci.data.batch_stream import resolve_workers, step_batches
from rsd_sci.data.batches import load_batch
from rsd_sci.data.measurement_set import MeasurementSet, open_measurement_set
from rsd_sci.diffusion.losses import sample_sigma, teacher_loss
from rsd_sci.diffusion.model import Model, build_model
from rsd_sci.engine import checkpoint, distributed
from rsd_sci.engine.ema import EMA
from rsd_sci.engine.loop import run_stage, set_lr, warmup_lr
from rsd_sci.engine.operator_bank import bank_metadata, bank_tensors, operator_bank
from rsd_sci.engine.precision import use_bf16
from rsd_sci.engine.runlog import RunLog
from rsd_sci.keyed_random import Stream, keyed_randn
from rsd_sci.measurement import Measurement
from rsd_sci.presets import NETWORK_KEYS, PRESETS
from rsd_sci.version import __version__

log = logging.getLogger(__name__)
HELDOUT_STEP = -2          # the key "step" of the held-out draws: the same every evaluation
HELDOUT_SAMPLES = 32       # test-split measurements in the held-out signals (teacher loss, distillation SW)


def draws(m: Measurement, seed: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """σ (B,) and the standard normal diffusion noise of each sample, keyed by (seed, step, index)."""
    keys = m.index
    sigma = sample_sigma(keyed_randn(keys, (), seed, step, Stream.TEACHER_SIGMA))
    noise = keyed_randn(keys, tuple(m.noise_shape()[1:]), seed, step, Stream.TEACHER_NOISE)
    return sigma.to(keys.device), noise.to(keys.device)


def batch_loss(D, teacher: Model, m: Measurement, seed: int, step: int) -> torch.Tensor:
    """The mean teacher loss over a (local) batch m at `step`."""
    sigma, noise = draws(m, seed, step)
    m_hat = m.further(seed) if teacher.member == "ambient" else None
    return teacher_loss(teacher.member, D, m, sigma, noise, m_hat=m_hat,
                        sigma_data=teacher.denoiser.sigma_data).mean()   # λ(σ) with the denoiser's own σ_d


def heldout_loss(D, teacher: Model, m: Measurement, seed: int) -> float:
    """The loss on held-out measurements with fixed draws: no clean data needed."""
    with torch.no_grad():
        return float(batch_loss(D, teacher, m, seed, HELDOUT_STEP))


def train_teacher(cfg: TrainConfig, run_dir: Path, data_dir: Path, info: distributed.DistInfo,
                  progress: Callable[[int, int], None] | None = None) -> Path:
    """Train (or resume) the teacher of `cfg` in `run_dir`; returns RUN/teacher.safetensors."""
    train_set, test_set = open_measurement_set(data_dir)   # of cfg's modality (`run_training`)
    torch.manual_seed(cfg.seed)  # the same initial weights on every process
    network = {k: PRESETS[cfg.preset][k] for k in NETWORK_KEYS}
    teacher = build_model(train_set.info.operator, network, float(train_set.column("sigma_n").max()))
    D = teacher.denoiser.to(info.device)
    ema = EMA(D, cfg.ema_half_life_images)
    model = distributed.wrap_ddp(D, info)
    optimizer = torch.optim.Adam(D.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    state_path = run_dir / "checkpoints" / "teacher" / "state.pt"
    start = checkpoint.resume_stage(state_path, cfg.steps, model=D, ema=ema, optimizer=optimizer)
    if start:
        log.info("resumed the teacher at step %d from %s", start, state_path)
    heldout_set = test_set or train_set
    heldout = teacher.family.measure(load_batch(heldout_set, range(min(HELDOUT_SAMPLES, len(heldout_set))),
                                                info.device))
    bf16 = use_bf16(cfg.precision, info.device, "teacher", cfg.modality)
    clock = {"t": time.perf_counter()}
    # the batches of steps start.., in the order run_stage calls step_fn, read ahead by the loader workers
    batches = step_batches(train_set.path, cfg.batch, cfg.seed, start, cfg.steps,
                           resolve_workers(cfg.loader_workers, info.device), info.device,
                           functools.partial(distributed.shard, info=info))

    def step_fn(step: int) -> dict:
        m = teacher.family.measure(next(batches))
        lr = warmup_lr(step, cfg.lr, cfg.warmup_steps)
        set_lr(optimizer, lr)
        with torch.autocast(info.device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = batch_loss(model, teacher, m, cfg.seed, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(D.parameters(), cfg.grad_clip)
        optimizer.step()
        ema.update(D, (step + 1) * cfg.batch, cfg.batch)
        now = time.perf_counter()
        metrics = dict(loss=float(distributed.all_reduce_mean(loss.detach())), lr=lr,
                       grad_norm=float(grad_norm), images_per_s=cfg.batch / max(now - clock["t"], 1e-9))
        clock["t"] = now
        metrics["memory_gb"] = peak_memory_gb(info.device)
        if (step + 1) % cfg.heldout_every == 0 or step + 1 == cfg.steps:
            metrics["heldout"] = heldout_loss(ema.module, teacher, heldout, cfg.seed)
        return metrics

    def save_fn(steps_done: int) -> None:
        checkpoint.save_stage_state(state_path, steps_done, model=D, ema=ema, optimizer=optimizer)

    run_stage(step_fn=step_fn, total_steps=cfg.steps, start_step=start, save_fn=save_fn,
              checkpoint_every=cfg.checkpoint_every, is_main=info.is_main, progress=progress,
              log=RunLog(run_dir / "log.jsonl", info.is_main), stage="teacher", log_every=cfg.log_every,
              checkpoint_path=state_path, sync_stop=lambda flag: distributed.any_rank(flag, info))
    out = run_dir / "teacher.safetensors"
    if info.is_main:
        export_teacher(out, ema.module, teacher, cfg, network, train_set, operator_bank(heldout_set))
    distributed.barrier()
    return out


def peak_memory_gb(device: torch.device) -> float:
    """Peak GPU memory allocated by torch on CUDA; the process's peak resident memory on CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # Linux reports KiB


def export_teacher(path: Path, D, teacher: Model, cfg: TrainConfig, network: dict, train_set: MeasurementSet,
                   bank: dict):
    """EMA weights, the operator bank and everything needed to rebuild and use the teacher (metadata)."""
    sigma_n = train_set.column("sigma_n")
    checkpoint.export_safetensors(path, D.state_dict() | bank_tensors(bank), bank_metadata(bank) | dict(
        kind="teacher", modality=cfg.modality, operator=teacher.spec, member=teacher.member,
        network=network, channels=teacher.family.channels, cond_channels=teacher.family.cond_channels,
        sigma_data=D.sigma_data, sigma_n=dict(mean=float(sigma_n.mean()), max=float(sigma_n.max())),
        config=dataclasses.asdict(cfg), data=str(train_set.path.parent), rsd_sci=__version__,
        scale="per sample (the measurement set's 'scale' and 'offset'); samples are in normalised units"))
