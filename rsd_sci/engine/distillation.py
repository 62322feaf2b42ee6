"""Phase 2 in a run directory: distil the teacher into a one-step generator (`train --stage distill`).

Iteration s (global batch B, each process its shard), in K + 1 parts j (K = fake_updates, published 1):
    parts j < K   a fake-score update on the operators of training samples global_batch_indices(n, B, s,
                  seed + 1 + j)
    part K        the generator update on those of global_batch_indices(n, B, s, seed + 1 + K); none in
                  the first `fake_warmup` iterations (the fake score first learns the distribution of
                  the generator it starts as, a copy of the teacher at σ_init, as SiDA freezes G early)
with every random draw keyed by (seed, s, key, stream), the keys (s·(K + 1) + j)·B + b, so 1 and N
processes agree (`rsd_sci.distill.draws.KeyedDraws`). Only the operators of the training samples are
used (masks, maps, σ_n): the distillation never reads a measurement.

Two signals are logged; neither needs clean data (docs/method.md). Both compare the generator's synthetic
measurements A(x_g) + noise with real ones y under the same operators (x_g from the generator's EMA,
with draws fixed across evaluations):
    heldout_sw            the multi-scale patch sliced Wasserstein distance between R(A(x_g) + noise)
                          and R(y) of the first HELDOUT_SAMPLES held-out samples, R the family's data
                          image (zero-filled adjoint, FBP, the image itself)
    measurement_spectrum  the distance between their log mean power per measured frequency (MRI: k-space
                          column; CT: detector frequency; images: radial ring) over SPECTRUM_SAMPLES
                          measurements (the held-out split, then training ones: the generator never
                          reads a measurement), which sees blur where heldout_sw does not
                          (docs/method.md, "Distillation")
The generator loss is signed and is no convergence signal; `fake_loss` (also logged as `loss`, the value
the loop's NaN check reads; it is NaN when every generator sample was dropped) shows whether the fake
score keeps up.

Model selection: the exported generator is the EMA at the evaluation with the lowest SELECTED_BY,
    selection_signal = sqrt(heldout_sw · measurement_spectrum)
(the geometric mean: an evaluation where either signal is far off loses; `rsd_sci.engine.best_snapshot`;
its iteration and value are in the file's metadata as `selected_step` and `selection_signal`), the EMA
at the end when no evaluation was finite. The candidates
are the scheduled evaluations (every `heldout_every` iterations) and the last iteration, never the end
of an interrupted session, so a resumed run exports what a straight one does.

Writes RUN/checkpoints/distill/state.pt and RUN/generator.safetensors (the selected EMA generator with
the teacher's metadata, the distillation settings and the teacher's operator bank).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
import math
import time
from pathlib import Path
from typing import Callable

import torch

from rsd_sci.config import TrainConfig
from rsd_sci.data.batch_stream import resolve_workers, step_batches
from rsd_sci.data.batches import load_batch
from rsd_sci.data.measurement_set import open_measurement_set
from rsd_sci.distill import alignment
from rsd_sci.distill.adversarial import MeasurementCritic
from rsd_sci.distill.distiller import Distiller, DistillSettings, generate
from rsd_sci.distill.draws import KeyedDraws
from rsd_sci.distill.losses import measure
from rsd_sci.engine import checkpoint, distributed
from rsd_sci.engine.best_snapshot import BestSnapshot
from rsd_sci.engine.ema import EMA
from rsd_sci.engine.loop import run_stage
from rsd_sci.engine.operator_bank import bank_metadata, bank_tensors, operator_bank
from rsd_sci.engine.precision import use_bf16
from rsd_sci.engine.runlog import RunLog
from rsd_sci.engine.model import load_model
from rsd_sci.engine.teacher import HELDOUT_SAMPLES, peak_memory_gb
from rsd_sci.errors import InputError
from rsd_sci.keyed_random import Stream
from rsd_sci.measurement import Measurement
from rsd_sci.version import __version__

log = logging.getLogger(__name__)
HELDOUT_STEP = -3            # the key "step" of the held-out draws: the same at every evaluation
SELECTED_BY = "selection_signal"   # the signal the exported generator is chosen by (docs/method.md)
SPECTRUM_SAMPLES = 256       # measurements in measurement_spectrum: with fewer its noise hid the differences
                             # between evaluations (docs/method.md, "Convergence signals")
SPECTRUM_CHUNK = 32          # measurements loaded and generated per call
SPECTRUM_KEY = 1 << 40       # keys of the spectrum draws: apart from the held-out samples' indices


def loss_space_of(cfg: TrainConfig, family) -> str:
    """cfg.loss_space, with "auto" resolved by the teacher's family (`Measurement.generator_loss_space`)."""
    return family.generator_loss_space if cfg.loss_space == "auto" else cfg.loss_space


def settings_of(cfg: TrainConfig, bf16: bool) -> DistillSettings:
    return DistillSettings(alpha=cfg.alpha, sigma_init=cfg.sigma_init, t_max=cfg.t_max, bf16=bf16,
                           loss_space=cfg.loss_space, sigma_floor=cfg.sigma_floor, gan_weight=cfg.gan_weight,
                           adm_weight=cfg.adm_weight)


def synthetic_measurements(G, m: Measurement, seed: int, sigma_init: float,
                           keys: torch.Tensor | None = None) -> Measurement:
    """m with y replaced by A(x_g) + noise: the generator's images measured as the batch m was (its
    operators and σ_n; the draws keyed by `keys`, default m's indices, the same at every evaluation)."""
    draws = KeyedDraws(m.index if keys is None else keys, seed, HELDOUT_STEP)
    with torch.no_grad():
        x_g = generate(G, m, draws, sigma_init).float()
        y = measure(m.op, m.to_image(x_g), m.sigma_n, lambda shape: draws.normal(shape, Stream.HELDOUT_MEASURE))
    return m.with_y(y)


def spectrum_chunks(sets) -> list[tuple[object, list[int], torch.Tensor]]:
    """What measurement_spectrum reads: the first SPECTRUM_SAMPLES of `sets` in order (the held-out split,
    then the training one; None skipped) as (set, indices, draw keys) chunks of at most SPECTRUM_CHUNK,
    each from one set; keys SPECTRUM_KEY + the sample's position in that order. Loaded when used, so a
    multi-coil set's measurements are not held between evaluations."""
    picks = [(s, i) for s in sets if s is not None for i in range(len(s))][:SPECTRUM_SAMPLES]
    chunks = []
    for start in range(0, len(picks), SPECTRUM_CHUNK):
        part = list(enumerate(picks[start:start + SPECTRUM_CHUNK], start))
        for source in dict.fromkeys(t for _, (t, _) in part):   # the sets in this chunk, in order
            mine = [(position, i) for position, (t, i) in part if t is source]
            chunks.append((source, [i for _, i in mine], SPECTRUM_KEY + torch.tensor([pos for pos, _ in mine])))
    return chunks


def measurement_spectrum(G, family, chunks, seed: int, sigma_init: float, device) -> float:
    """`log_spectrum_distance` between the mean power per measured frequency (`Measurement.measured_power`)
    of A(x_g) + noise and of y over the chunks (`spectrum_chunks`); no clean data."""
    from rsd_sci.metrics.distribution import log_spectrum_distance

    real = fake = 0.0
    for source, indices, keys in chunks:
        m = family.measure(load_batch(source, indices, device))
        synthetic = synthetic_measurements(G, m, seed, sigma_init, keys.to(device))
        real = real + m.measured_power() * len(m)
        fake = fake + synthetic.measured_power() * len(m)
    return log_spectrum_distance(fake, real, keep=real > 0)   # sums: the same ratio as the means


def heldout_signals(G, m: Measurement, chunks, seed: int, sigma_init: float) -> dict[str, float]:
    """The generator's two signals (see the module docstring): heldout_sw on the held-out batch m, the
    patch sliced Wasserstein distance between R(A(x_g) + noise) and R(y) (mean over scales), and
    measurement_spectrum on the chunks; and selection_signal, their geometric mean."""
    from rsd_sci.metrics.distribution import patch_sliced_wasserstein

    fake = synthetic_measurements(G, m, seed, sigma_init)
    with torch.no_grad():
        real_images, fake_images = m.network_input(), fake.network_input()
        patch = min(8, *real_images.shape[-2:])
        sw = patch_sliced_wasserstein(fake_images, real_images, patch=patch, n_patches=2048, seed=seed)["mean"]
    spectrum = measurement_spectrum(G, m, chunks, seed, sigma_init, m.y.device)
    return dict(heldout_sw=float(sw), measurement_spectrum=spectrum, selection_signal=math.sqrt(float(sw) * spectrum))


class TeacherRecord:
    """The distillation checkpoint's record of its teacher: the digest of the teacher's weights, so a
    resume from another teacher (`--teacher` may change between sessions) is refused rather than mixing
    a fake score and generator copied from one teacher with the loss of another. Checkpoints written
    before the record resume unchecked (`optional`)."""

    optional = True

    def __init__(self, path: Path, weights: dict):
        self.path, self.digest = path, checkpoint.content_digest(weights)

    def state_dict(self) -> dict:
        return {"weights": self.digest}

    def load_state_dict(self, state: dict) -> None:
        if state.get("weights") != self.digest:
            raise InputError(self.path, "is not the teacher this run's distillation started from: distil it "
                                        "with a new --out")


def teacher_path(cfg: TrainConfig, run_dir: Path) -> Path:
    path = Path(cfg.teacher) if cfg.teacher else run_dir / "teacher.safetensors"
    if not path.is_file():
        raise InputError(path, "no teacher to distil: train one first (--stage teacher or all) or pass --teacher")
    return path


def train_distill(cfg: TrainConfig, run_dir: Path, data_dir: Path, info: distributed.DistInfo,
                  progress: Callable[[int, int], None] | None = None,
                  observe: Callable[[int, torch.nn.Module, dict], None] | None = None) -> Path:
    """Distil (or resume distilling) the teacher of `cfg` in `run_dir`; returns RUN/generator.safetensors.

    observe(iterations_done, ema_generator, metrics), when given, is called after every held-out
    evaluation (`benchmarks/distillation.py` measures the EMA against clean images there)."""
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
    cfg = dataclasses.replace(cfg, loss_space=loss_space_of(cfg, teacher.family))
    settings = settings_of(cfg, bf16=use_bf16(cfg.precision, info.device, "distill", cfg.modality))
    heldout_set = test_set or train_set
    heldout = teacher.family.measure(load_batch(heldout_set, range(min(HELDOUT_SAMPLES, len(heldout_set))),
                                                info.device))
    critic = critic_opt = None
    if cfg.gan_weight > 0:   # the measurement critic (rsd_sci.distill.adversarial), trained at the fake rate
        torch.manual_seed(cfg.seed)
        critic = MeasurementCritic(heldout.network_input().shape[1:]).to(info.device)
        critic_opt = torch.optim.Adam(critic.parameters(), lr=cfg.fake_lr, betas=(0.0, 0.999))
    aligner = aligner_opt = None
    if cfg.adm_weight > 0:   # the prediction critic (rsd_sci.distill.alignment), trained at the fake rate
        torch.manual_seed(cfg.seed + 1)
        aligner = MeasurementCritic(alignment.input_shape(heldout.network_input().shape[1:])).to(info.device)
        aligner_opt = torch.optim.Adam(aligner.parameters(), lr=cfg.fake_lr, betas=(0.0, 0.999))
    distiller = Distiller(teacher, fake, G, fake_opt, g_opt, settings,
                          fake_train=distributed.wrap_ddp(fake, info), generator_train=distributed.wrap_ddp(G, info),
                          critic=critic, critic_opt=critic_opt,
                          critic_train=None if critic is None else distributed.wrap_ddp(critic, info),
                          aligner=aligner, aligner_opt=aligner_opt,
                          aligner_train=None if aligner is None else distributed.wrap_ddp(aligner, info))
    state_path = run_dir / "checkpoints" / "distill" / "state.pt"
    parts = dict(fake=fake, generator=G, ema=ema, fake_opt=fake_opt, g_opt=g_opt, best=best,
                 teacher=TeacherRecord(source, teacher.denoiser.state_dict()))
    parts |= {} if critic is None else dict(critic=critic, critic_opt=critic_opt)
    parts |= {} if aligner is None else dict(aligner=aligner, aligner_opt=aligner_opt)
    start = checkpoint.resume_stage(state_path, cfg.distill_steps, **parts)
    if start:
        log.info("resumed the distillation at iteration %d from %s", start, state_path)
    chunks = spectrum_chunks((test_set, train_set))
    B = cfg.batch
    clock = {"t": time.perf_counter()}
    last_value: dict[int, float] = {}   # the signal of an off-schedule last iteration, for the export

    n_parts = cfg.fake_updates + 1   # fake-score updates, then the generator's
    # one stream of batches per part, read ahead by its share of the loader workers
    workers = -(-resolve_workers(cfg.loader_workers, info.device) // n_parts)
    streams = [step_batches(train_set.path, B, cfg.seed + 1 + part, start, cfg.distill_steps, workers, info.device,
                            functools.partial(distributed.shard, info=info)) for part in range(n_parts)]

    def ops_and_draws(step: int, part: int):
        keys = distributed.shard((step * n_parts + part) * B + torch.arange(B), info)
        m = teacher.family.measure(next(streams[part]))   # rows global_batch_indices(n, B, step, seed + 1 + part)
        return m, KeyedDraws(keys.to(info.device), cfg.seed, step)

    def step_fn(step: int) -> dict:
        for part in range(n_parts - 2):   # the extra fake-score updates (two time scales)
            distiller.fake_step(*ops_and_draws(step, part))
        (m_fake, draws_fake), (m_gen, draws_gen) = ops_and_draws(step, n_parts - 2), ops_and_draws(step, n_parts - 1)
        if step < cfg.fake_warmup:   # the fake score learns the generator's distribution before G moves
            stats = distiller.fake_step(m_fake, draws_fake) | dict(g_loss=0.0, g_dropped=0)
        else:
            stats = distiller.iteration(m_fake, m_gen, draws_fake, draws_gen)
        ema.update(G, (step + 1) * B, B)
        now = time.perf_counter()
        fake_loss = float(distributed.all_reduce_mean(torch.tensor(stats["fake_loss"], device=info.device)))
        g_loss = float(distributed.all_reduce_mean(torch.tensor(stats["g_loss"], device=info.device)))
        metrics = dict(loss=fake_loss if torch.isfinite(torch.tensor(g_loss)) else float("nan"),
                       fake_loss=fake_loss, g_loss=g_loss, fake_grad_norm=stats["fake_grad_norm"],
                       dropped=stats["fake_dropped"] + stats["g_dropped"], lr=cfg.g_lr,
                       images_per_s=B / max(now - clock["t"], 1e-9), memory_gb=peak_memory_gb(info.device))
        metrics |= {k: stats[k] for k in ("critic_loss", "g_adversarial", "aligner_loss", "g_alignment")
                    if k in stats}   # with a critic, an aligner
        clock["t"] = now
        scheduled = (step + 1) % cfg.heldout_every == 0
        if scheduled or step + 1 == cfg.distill_steps:
            metrics |= heldout_signals(ema.module, heldout, chunks, cfg.seed, settings.sigma_init)
            if scheduled:   # the end of a session off the schedule is no candidate: a resumed run must select
                best.offer(ema.module, metrics[SELECTED_BY], step + 1)   # as a straight one (export below)
            else:
                last_value[step + 1] = metrics[SELECTED_BY]
            if observe is not None:
                observe(step + 1, ema.module, metrics)
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
            last = last_value.get(cfg.distill_steps)   # computed again only when this invocation ran no step
            if last is None:
                last = heldout_signals(ema.module, heldout, chunks, cfg.seed, settings.sigma_init)[SELECTED_BY]
            candidates += [(last, cfg.distill_steps, ema.module)] if math.isfinite(last) else []
        value, step, module = min(candidates, key=lambda c: c[0], default=(None, cfg.distill_steps, ema.module))
        export_generator(out, module, meta, cfg, source, bank, selected={"selected_step": step, SELECTED_BY: value})
    distributed.barrier()
    return out


def export_generator(path: Path, G, teacher_meta: dict, cfg: TrainConfig, source: Path, bank: dict,
                     selected: dict | None = None) -> None:
    """The EMA generator with the teacher's metadata (operator, network, ...), its settings, the bank
    and `selected` (selected_step and its SELECTED_BY value: which EMA snapshot this is)."""
    meta = {k: v for k, v in teacher_meta.items() if k not in ("bank", "format", "rsd_sci_version")}
    meta |= dict(kind="generator", teacher=str(source), sigma_init=cfg.sigma_init, alpha=cfg.alpha, t_max=cfg.t_max,
                 loss_space=cfg.loss_space, sigma_floor=cfg.sigma_floor,
                 config=dataclasses.asdict(cfg), rsd_sci=__version__) | (selected or {})
    checkpoint.export_safetensors(path, G.state_dict() | bank_tensors(bank), meta | bank_metadata(bank))
