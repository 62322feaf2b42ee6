"""Training configuration: one dataclass, resolved from a preset and the user's flags, saved as YAML.

A run directory's `config.yaml` is the resolved configuration. Running the same command again resumes;
a flag that contradicts the saved value is refused (a new `--out` is the way to change the data or the
model), except the few that may change between sessions (`RESUMABLE`: more steps, another device,
checkpoint and log intervals).

    >>> cfg = TrainConfig(modality="ct", preset="tiny", batch=4).resolved()
    >>> cfg.batch, cfg.steps > 0, cfg.make["views"]
    (4, True, 20)
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rsd_sci.errors import InputError, check_range

# options of `data make` that `train` accepts when it builds its own measurement set
MAKE_OPTIONS = ("accel", "center_fraction", "mask", "coils", "virtual_coils", "size", "views", "view_kind",
                "sigma_n", "corruption", "p", "delta", "blur_kernel", "blur_std", "factor", "n_train",
                "n_test", "test_fraction", "workers")
# preset hyperparameters a user may override with a flag
PRESET_OPTIONS = ("steps", "batch", "lr", "warmup_steps", "ema_half_life_images", "grad_clip",
                  "distill_steps", "g_lr", "fake_lr", "alpha", "sigma_init", "t_max", "loss_space", "sigma_floor",
                  "fake_updates", "fake_warmup", "gan_weight", "eval_slices")
RESUMABLE = {"stage", "teacher", "steps", "distill_steps", "device", "precision", "checkpoint_every", "log_every",
             "heldout_every", "workers", "loader_workers", "evaluate", "eval_slices", "adps_steps", "generator_steps"}
MODALITIES = ("mri", "ct", "image")
# number settings of `train`: (name, low, high, low_open): a finite value in (low, high], [low, high]
# when low_open is False; None: no bound on that side
NUMBER_RANGES = (("lr", 0.0, 1.0, True), ("g_lr", 0.0, 1.0, True), ("fake_lr", 0.0, 1.0, True),
                 ("grad_clip", 0.0, None, True), ("ema_half_life_images", 0.0, None, True),
                 ("alpha", 0.0, None, True), ("sigma_init", 0.0, None, True), ("t_max", 0.0, 1000.0, True),
                 ("sigma_floor", 0.0, None, False), ("gan_weight", 0.0, None, False))
STAGES = ("all", "teacher", "distill")
PATH_OPTIONS = ("data", "teacher")   # kept as the absolute path they name: one file, however it is spelled


@dataclass
class TrainConfig:
    modality: str = "mri"                 # mri | ct | image
    stage: str = "all"                    # teacher | distill | all (teacher, then distillation)
    teacher: str | None = None            # distill: a teacher.safetensors (default RUN/teacher.safetensors)
    data: str | None = None               # measurement set, raw source folder, or None: the phantoms
    make: dict = field(default_factory=dict)   # data-make options (MAKE_OPTIONS) for built sets
    preset: str | None = None             # rsd_sci.presets.PRESETS; None: tiny on CPU, small on CUDA
    steps: int | None = None              # teacher steps (None: the preset's)
    batch: int | None = None              # global batch (all processes together)
    lr: float | None = None               # Adam learning rate after warm-up
    warmup_steps: int | None = None       # linear warm-up length
    ema_half_life_images: float | None = None   # EMA half-life cap (images); the ramp handles short runs
    grad_clip: float | None = None        # gradient-norm clip
    distill_steps: int | None = None      # distillation iterations (fake-score + generator update)
    g_lr: float | None = None             # generator Adam rate (betas (0, 0.999))
    fake_lr: float | None = None          # fake-score Adam rate (betas (0, 0.999))
    alpha: float | None = None            # SiD's α
    sigma_init: float | None = None       # the generator's input noise level
    t_max: float | None = None            # t ~ U[0, t_max/1000] in the generator loss
    loss_space: str | None = None         # generator loss "projected" (through P), on "full" images, or "auto"
    sigma_floor: float | None = None      # no σ_t below this in the generator loss (0: none)
    fake_updates: int | None = None       # fake-score updates per generator update
    fake_warmup: int | None = None        # first distillation iterations that update the fake score only
    gan_weight: float | None = None       # weight of the measurement critic's term (0: no critic)
    evaluate: bool = True                 # stage all: end with samples, reconstructions, metrics, report
    eval_slices: int | None = None        # held-out slices reconstructed by every method (preset's)
    adps_steps: int | None = None         # the evaluation's A-DPS noise levels (None: 300)
    generator_steps: int | None = None    # the evaluation's generator-prior iterations (None: 200)
    device: str = "auto"                  # auto | cpu | cuda
    precision: str = "auto"               # training's autocast: auto (rsd_sci.engine.precision) | bf16 | float32
    seed: int = 0
    checkpoint_every: int = 200           # steps between checkpoints
    log_every: int = 10                   # steps between log.jsonl lines
    heldout_every: int = 100              # steps between held-out measurement-domain losses
    loader_workers: int | None = None     # processes reading the training batches ahead of the step
                                          # (rsd_sci.data.batch_stream); None: 4 on CUDA, 0 (in the
                                          # training process) on the CPU

    def validate(self) -> None:
        if self.modality not in MODALITIES:
            raise InputError(None, f"unknown modality {self.modality!r} (mri, ct or image)")
        if self.stage not in STAGES:
            raise InputError(None, f"unknown stage {self.stage!r} ({', '.join(STAGES)})")
        unknown = set(self.make) - set(MAKE_OPTIONS)
        if unknown:
            raise InputError(None, f"unknown data option(s): {', '.join(sorted(unknown))}")
        accel = self.make.get("accel")
        if accel is not None and accel < 1:
            raise InputError(None, f"--accel must be at least 1 (got {accel:g})")
        for name in ("steps", "batch", "distill_steps", "fake_updates", "eval_slices", "adps_steps",
                     "generator_steps", "checkpoint_every",
                     "log_every", "heldout_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(None, f"--{name} must be at least 1 (got {value})")
        for name, low, high, low_open in NUMBER_RANGES:
            check_range(f"--{name.replace('_', '-')}", getattr(self, name), low, high, low_open)
        if self.loader_workers is not None and self.loader_workers < 0:
            raise InputError(None, f"--loader-workers must be at least 0 (got {self.loader_workers})")
        if self.fake_warmup is not None and self.fake_warmup < 0:
            raise InputError(None, f"--fake-warmup must be at least 0 (got {self.fake_warmup})")
        if self.loss_space not in (None, "auto", "projected", "full"):
            raise InputError(None, f"--loss-space must be auto, projected or full (got {self.loss_space!r})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(None, f"--device must be auto, cpu or cuda (got {self.device!r})")
        if self.precision not in ("auto", "bf16", "float32"):
            raise InputError(None, f"--precision must be auto, bf16 or float32 (got {self.precision!r})")

    def resolved(self, cuda_available: bool = False) -> "TrainConfig":
        """Preset defaults filled in; data-make defaults for the modality filled in."""
        from rsd_sci.data.make import MakeSpec
        from rsd_sci.presets import PRESETS

        self.validate()
        preset = self.preset or ("small" if cuda_available and self.device != "cpu" else "tiny")
        if preset not in PRESETS:
            raise InputError(None, f"unknown preset {preset!r} ({', '.join(PRESETS)})")
        values = {k: getattr(self, k) if getattr(self, k) is not None else PRESETS[preset][k]
                  for k in PRESET_OPTIONS}
        defaults = MakeSpec(modality=self.modality)
        make = {k: getattr(defaults, k) for k in MAKE_OPTIONS} | dict(self.make)
        paths = {k: _canonical(k, getattr(self, k)) for k in PATH_OPTIONS}
        return dataclasses.replace(self, preset=preset, make=make, **values, **paths)

    def to_yaml(self, path: str | Path) -> None:
        from rsd_sci.data.atomic import atomic_path

        with atomic_path(path) as tmp:
            Path(tmp).write_text(yaml.safe_dump(asdict(self), sort_keys=False))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "TrainConfig":
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise InputError(path, f"cannot read the run configuration ({type(e).__name__})") from None
        if not isinstance(data, dict) or not data:
            raise InputError(path, "is not a run configuration (expected a YAML mapping of settings)")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InputError(path, f"unknown key(s) {', '.join(sorted(unknown))}")
        cfg = cls(**data)
        try:
            cfg.validate()
        except InputError as e:
            raise InputError(path, e.problem) from None
        except TypeError:   # a value of the wrong type compared with a bound
            raise InputError(path, "holds a setting of the wrong type") from None
        return cfg


def _canonical(name: str, value: Any) -> Any:
    """A path option (PATH_OPTIONS) as the absolute path it names, symlinks followed, so that `--data set`,
    `--data ./set` and `--data /home/me/set` are one data set; any other value as it is.

        >>> _canonical("data", "/tmp/../tmp/set") == str(Path("/tmp/set").resolve()), _canonical("steps", 5)
        (True, 5)
    """
    if name in PATH_OPTIONS and value is not None:
        return str(Path(value).expanduser().resolve())
    return value


def conflicts(saved: TrainConfig, requested: dict[str, Any]) -> list[str]:
    """The explicitly requested values that contradict a saved run (RESUMABLE ones excepted).

    `requested` holds only what the user typed (flags or --config), with data-make options nested
    under "make"; each conflict reads "name: saved -> requested".
    """
    out = []
    for name, value in requested.items():
        if name in RESUMABLE:
            continue
        if name == "make":
            out += [f"{k}: {saved.make.get(k)!r} -> {v!r}" for k, v in value.items()
                    if k not in RESUMABLE and saved.make.get(k) != v]
        elif _canonical(name, getattr(saved, name)) != _canonical(name, value):
            out.append(f"{name}: {getattr(saved, name)!r} -> {value!r}")
    return out


def merge_resumable(saved: TrainConfig, requested: dict[str, Any]) -> TrainConfig:
    """The saved run with the resumable values the user asked for (e.g. more --steps); settings that a
    config.yaml of an older version lacks take the preset's values."""
    top = {k: v for k, v in requested.items() if k in RESUMABLE}
    make = dict(saved.make) | {k: v for k, v in requested.get("make", {}).items() if k in RESUMABLE}
    return dataclasses.replace(saved, make=make, **top).resolved()


def run_config(run_dir: Path, requested: dict[str, Any], cuda_available: bool = False) -> TrainConfig:
    """The configuration a run in `run_dir` trains with: the saved one with the resumable values of
    `requested` (what the user typed, data-make options under "make"), or a new one resolved from it.
    InputError when `requested` contradicts the saved run."""
    saved_path = Path(run_dir) / "config.yaml"
    if not saved_path.is_file():
        return TrainConfig(**requested).resolved(cuda_available)
    saved = TrainConfig.from_yaml(saved_path)
    clash = conflicts(saved, requested)
    if clash:
        raise InputError(run_dir, f"the settings conflict with the run there ({'; '.join(clash)}); use another "
                                  "output folder, or the same settings to resume")
    return merge_resumable(saved, requested)
