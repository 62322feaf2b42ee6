"""Training configuration: one dataclass, resolved from a preset and the user's flags, saved as YAML.

`TrainConfig` is the one record of a run's settings, a section per stage (the teacher, the
distillation, the evaluation; the data's options under `make`, `rsd_sci.data.make.MakeSpec`'s). Each
field is written once, with what the checks read from it (`setting`): its bounds, whether a preset
gives its value and what it is where the preset names none, whether it may change when a run resumes.
The lists the rest of the code uses are read from the fields: `PRESET_OPTIONS`, `RESUMABLE`,
`NUMBER_RANGES`, `COUNTS`, `PATH_OPTIONS`, and `MAKE_OPTIONS` from MakeSpec's.

A run directory's `config.yaml` is the resolved configuration. Running the same command again resumes;
a flag that contradicts the saved value is refused (a new `--out` is the way to change the data or the
model), except the few that may change between sessions (`RESUMABLE`: more steps, another device,
checkpoint and log intervals).

    >>> cfg = TrainConfig(modality="ct", preset="tiny", batch=4).resolved()
    >>> cfg.batch, cfg.steps > 0, cfg.make["views"], cfg.alpha
    (4, True, 20, 1.2)
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rsd_sci.data.make import MakeSpec
from rsd_sci.distill.losses import ALPHA, SIGMA_INIT, T_MAX
from rsd_sci.errors import InputError, check_range

MODALITIES = ("mri", "ct", "image")
STAGES = ("all", "teacher", "distill")
FROM_PRESET = object()   # `setting(preset=...)`: every preset names this value


def setting(default: Any = None, *, preset: Any = None, at_least: int | None = None, low: float | None = None,
            high: float | None = None, low_open: bool = True, resumable: bool = False, path: bool = False):
    """A TrainConfig field and what the checks read from it (only what is given is kept):
    preset      a preset gives its value where the user gives none (the field's default is then None):
                FROM_PRESET (every preset names it), or the value where the preset names none
    at_least    a count: at least this (`COUNTS`)
    low, high, low_open   a finite number in (low, high], or [low, high] when low_open is False
                (`NUMBER_RANGES`, `rsd_sci.errors.check_range`; None: no bound on that side)
    resumable   may change when the run resumes (`RESUMABLE`)
    path        kept as the absolute path it names: one file, however it is spelled (`PATH_OPTIONS`)
    """
    checks = dict(preset=preset, at_least=at_least, resumable=resumable or None, path=path or None,
                  range=(low, high, low_open) if low is not None or high is not None else None)
    return field(default=None if preset is not None else default,
                 metadata={k: v for k, v in checks.items() if v is not None})


@dataclass
class TrainConfig:
    # the run
    modality: str = "mri"                 # mri | ct | image
    stage: str = setting("all", resumable=True)   # teacher | distill | all (teacher, then distillation)
    teacher: str | None = setting(resumable=True, path=True)   # distill: a teacher.safetensors
                                                                # (default RUN/teacher.safetensors)
    data: str | None = setting(path=True)        # measurement set, raw source folder, or None: the phantoms
    make: dict = field(default_factory=dict)     # data-make options (MAKE_OPTIONS) for built sets
    preset: str | None = None                    # rsd_sci.presets.PRESETS; None: tiny on CPU, small on CUDA

    # A setting with `preset=` is None until resolved: the user's value, else the preset's, else (where the
    # preset names none) the value after `preset=`, the published one where there is one.

    # the teacher (rsd_sci.engine.teacher)
    steps: int | None = setting(preset=FROM_PRESET, at_least=1, resumable=True)   # teacher steps
    batch: int | None = setting(preset=FROM_PRESET, at_least=1)          # global batch (all processes together)
    lr: float | None = setting(preset=FROM_PRESET, low=0.0, high=1.0)    # Adam learning rate after warm-up
    warmup_steps: int | None = setting(preset=FROM_PRESET)               # linear warm-up length
    # the EMA's half-life cap in images (EDM's 0.5 Mimg; the EMA's ramp shortens it early in a run)
    ema_half_life_images: float | None = setting(preset=500_000, low=0.0)
    grad_clip: float | None = setting(preset=1.0, low=0.0)   # gradient-norm clip (published, both stages)

    # the distillation (rsd_sci.engine.distillation, rsd_sci.distill)
    # iterations: a fake-score update, then a generator update
    distill_steps: int | None = setting(preset=FROM_PRESET, at_least=1, resumable=True)
    g_lr: float | None = setting(preset=FROM_PRESET, low=0.0, high=1.0)      # generator Adam rate (betas (0, 0.999))
    fake_lr: float | None = setting(preset=FROM_PRESET, low=0.0, high=1.0)   # fake-score Adam rate (betas (0, 0.999))
    alpha: float | None = setting(preset=ALPHA, low=0.0)                     # SiD's α
    sigma_init: float | None = setting(preset=SIGMA_INIT, low=0.0)           # the generator's input noise level
    t_max: float | None = setting(preset=T_MAX, low=0.0, high=1000.0)        # t ~ U[0, t_max/1000] in the generator loss
    # the generator loss "projected" (through P), on "full" images, or "auto" (by the family: `loss_space_of`)
    loss_space: str | None = setting(preset="auto")
    # no σ_t below this in the generator loss (0: none, σ_t from the whole published range)
    sigma_floor: float | None = setting(preset=0.0, low=0.0, low_open=False)
    fake_updates: int | None = setting(preset=1, at_least=1)   # fake-score updates per generator update (published)
    # first iterations that update the fake score only (0: the generator moves from the first, as published)
    fake_warmup: int | None = setting(preset=0)
    # weight of the measurement critic's term (0: no critic, as published)
    gan_weight: float | None = setting(preset=0.0, low=0.0, low_open=False)
    # weight of the aligner's term: a critic of the teacher's against the fake score's predictions (0: none,
    # as published)
    adm_weight: float | None = setting(preset=0.0, low=0.0, low_open=False)

    # the evaluation (rsd_sci.apps.evaluate)
    evaluate: bool = setting(True, resumable=True)   # stage all: end with samples, reconstructions, metrics, report
    # held-out slices reconstructed by every method
    eval_slices: int | None = setting(preset=FROM_PRESET, at_least=1, resumable=True)
    adps_steps: int | None = setting(at_least=1, resumable=True)        # A-DPS noise levels (None: EvalSettings')
    generator_steps: int | None = setting(at_least=1, resumable=True)   # generator-prior iterations (None: its)

    # the session
    device: str = setting("auto", resumable=True)      # auto | cpu | cuda
    precision: str = setting("auto", resumable=True)   # training's autocast: auto (rsd_sci.engine.precision) |
                                                       # bf16 | float32
    seed: int = 0
    checkpoint_every: int = setting(200, at_least=1, resumable=True)   # steps between checkpoints
    log_every: int = setting(10, at_least=1, resumable=True)           # steps between log.jsonl lines
    heldout_every: int = setting(100, at_least=1, resumable=True)      # steps between held-out signals
    loader_workers: int | None = setting(None, resumable=True)   # processes reading the training batches
                                          # ahead of the step (rsd_sci.data.batch_stream); None: 4 on CUDA,
                                          # 0 (in the training process) on the CPU

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
        for name, least in COUNTS:
            value = getattr(self, name)
            if value is not None and value < least:
                raise InputError(None, f"--{name.replace('_', '-')} must be at least {least} (got {value})")
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
        from rsd_sci.presets import PRESETS

        self.validate()
        preset = self.preset or ("small" if cuda_available and self.device != "cpu" else "tiny")
        if preset not in PRESETS:
            raise InputError(None, f"unknown preset {preset!r} ({', '.join(PRESETS)})")
        values = {k: getattr(self, k) if getattr(self, k) is not None else _preset_value(PRESETS[preset], k)
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


def _with(record, check: str) -> list:
    """The fields of a dataclass `record` whose metadata holds `check`, in their order."""
    return [f for f in dataclasses.fields(record) if check in f.metadata]


# what the checks read, from the fields (see `setting`)
PRESET_OPTIONS = tuple(f.name for f in _with(TrainConfig, "preset"))   # a preset gives their values
COUNTS = tuple((f.name, f.metadata["at_least"]) for f in _with(TrainConfig, "at_least"))
NUMBER_RANGES = tuple((f.name, *f.metadata["range"]) for f in _with(TrainConfig, "range"))
PATH_OPTIONS = tuple(f.name for f in _with(TrainConfig, "path"))
MAKE_OPTIONS = tuple(f.name for f in _with(MakeSpec, "train"))   # data-make options a run takes (`make`)
RESUMABLE = {f.name for f in _with(TrainConfig, "resumable") + _with(MakeSpec, "resumable")}


def _preset_value(preset: dict, name: str) -> Any:
    """The preset's value of a PRESET_OPTIONS setting, or the setting's own where the preset names none."""
    own = TrainConfig.__dataclass_fields__[name].metadata["preset"]
    return preset[name] if own is FROM_PRESET else preset.get(name, own)


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
