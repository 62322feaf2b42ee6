"""Build a measurement set (train.h5, test.h5, card.yaml) from phantoms or files: `rsd-sci data make`.

Flow: list volumes -> split by volume -> per volume one mask (MRI lines seeded by the file name alone,
as fastMRI does; CT: the sparse view set rotated by an offset seeded by the name) -> per slice the
modality's simulation (`simulate_mri`, `simulate_ct`, `simulate_image`) -> appended to the split file.
Everything is written into OUT.partial, renamed onto `out` at the end: a failed build leaves nothing, an
interrupted one the whole volumes it wrote, which the same build started again keeps and continues
(`rsd_sci.data.partial_set`; every slice's randomness is keyed by its volume and index). Slices may be
processed by `workers` processes (ESPIRiT dominates the multi-coil cost; `maps` picks our torch ESPIRiT,
on `device`, or sigpy's).
"""

from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import multiprocessing
import numpy as np
import yaml

from rsd_sci.data import simulate_ct, simulate_image, simulate_mri, sources
from rsd_sci.disk_space import check_free_space
from rsd_sci.data.measurement_set import VERSION
from rsd_sci.data.partial_set import building, fingerprint
from rsd_sci.errors import InputError, check_range
from rsd_sci.memory_guard import check_fits_in_memory
from rsd_sci.physics.coil_maps import ESPIRIT_METHODS
from rsd_sci.physics.masks import LineMask, MaskSpec, seed_from_name

log = logging.getLogger(__name__)
MAX_SIMULATED_COILS = 64      # birdcage-simulated receive coils (phantoms, NIfTI)
SLICE_WORK = 128              # bytes of working memory per pixel and coil of one slice (complex64 copies)


def train_option(default, *, resumable: bool = False):
    """A MakeSpec field that `train` takes too (under TrainConfig.make: `rsd_sci.config.MAKE_OPTIONS`);
    resumable: it may change when a run resumes (`rsd_sci.config.RESUMABLE`: the set is the same)."""
    return field(default=default, metadata=dict(train=True) | (dict(resumable=True) if resumable else {}))


@dataclass
class MakeSpec:
    """Everything `data make` needs; the CLI fills it from flags. Defaults suit the phantoms on a CPU.
    A run takes the `train_option`s; its modality, source, input and seed are its own."""

    modality: str = "mri"                 # mri | ct | image
    source: str = "phantom"               # phantom | fastmri | nifti | lodopab | dicom
    input: str | None = None              # file or folder (not for phantoms)
    test_input: str | None = None         # the user's own test files (e.g. fastMRI val)
    accel: float = train_option(4.0)      # MRI acceleration R
    center_fraction: float = train_option(0.08)   # MRI fully sampled centre (fastMRI's centre_fractions)
    mask: str = train_option("random")    # random | equispaced | equispaced_fraction | gaussian | poisson
    coils: int = train_option(1)          # phantom/NIfTI MRI: simulated coils (1 = single-coil)
    virtual_coils: int | None = train_option(None)   # fastMRI multi-coil: SVD coil compression to N
    size: int | None = train_option(None)   # phantom size (default 64) or resample file images to size²
    views: int = train_option(20)         # CT views kept of n_angles: few enough that the main job's teacher
                                          # is above the clean floor (docs/method.md, "CT at 20 of 180 views")
    n_angles: int = 180                   # CT source geometry: views over 180°
    view_kind: str = train_option("sparse")   # sparse | limited
    sigma_n: float | str | None = train_option(None)   # noise std (normalised units), "auto"; None: 0.2 for
                                          # image denoising, 0 for other simulations, measured for fastMRI
    corruption: str = train_option("noise")   # image: noise | blur | inpaint | downsample
    p: float = train_option(0.5)          # inpaint: probability a pixel is missing
    delta: float = train_option(0.1)      # inpaint: further-mask drop probability (Ambient)
    blur_kernel: int = train_option(9)
    blur_std: float = train_option(1.5)
    factor: int = train_option(2)         # down-sampling factor
    n_train: int | None = train_option(None)   # phantoms: count (default 256); files: cap on slices
    n_test: int | None = train_option(None)    # phantoms: count (default 32); files: cap on slices
    test_fraction: float = train_option(0.2)   # files without --test-input: share of volumes for test
    seed: int = 0
    workers: int = train_option(1, resumable=True)
    maps: str = "torch"                   # multi-coil MRI: ESPIRiT by torch (ours) or sigpy (reference)
    device: str = "cpu"                   # where torch ESPIRiT runs: cpu | cuda | cuda:N
    extra: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.modality not in ("mri", "ct", "image"):
            raise InputError(None, f"unknown modality {self.modality!r} (mri, ct or image)")
        if self.source not in sources.SOURCES:
            raise InputError(None, f"unknown source {self.source!r} ({', '.join(sources.SOURCES)})")
        if self.modality not in sources.SOURCE_MODALITIES[self.source]:
            raise InputError(None, f"--source {self.source} does not provide --modality {self.modality}")
        if self.source != "phantom" and self.input is None:
            raise InputError(None, f"--source {self.source} needs --input FILE_OR_DIR")
        check_range("--accel", self.accel, 1.0, None, low_open=False)
        check_range("--center-fraction", self.center_fraction)
        if not 0 < self.center_fraction < 1:
            raise InputError(None, f"--center-fraction must be in (0, 1) (got {self.center_fraction:g})")
        for flag, value, low in (("--coils", self.coils, 1), ("--virtual-coils", self.virtual_coils, 1),
                                 ("--size", self.size, 8), ("--n-train", self.n_train, 1),
                                 ("--n-test", self.n_test, 1), ("--workers", self.workers, 1),
                                 ("--blur-kernel", self.blur_kernel, 1), ("--factor", self.factor, 1)):
            if value is not None and value < low:
                raise InputError(None, f"{flag} must be at least {low} (got {value})")
        if self.coils > MAX_SIMULATED_COILS:
            raise InputError(None, f"--coils must be at most {MAX_SIMULATED_COILS} simulated coils (got {self.coils})")
        check_range("--blur-std", self.blur_std, 0.0)
        check_range("--delta", self.delta, 0.0, None, low_open=False)
        if self.delta >= 1:
            raise InputError(None, f"--delta must be below 1 (got {self.delta:g})")
        if self.modality == "ct" and not 1 <= self.views <= self.n_angles:
            raise InputError(None, f"--views must be in [1, {self.n_angles}] (got {self.views})")
        if self.modality == "image" and self.corruption == "inpaint" and not 0 <= self.p < 1:
            raise InputError(None, f"--p must be in [0, 1) (got {self.p:g})")
        if not 0 < self.test_fraction < 1:
            raise InputError(None, f"--test-fraction must be in (0, 1) (got {self.test_fraction:g})")
        if self.seed < 0:
            raise InputError(None, f"--seed must be >= 0 (got {self.seed})")
        if isinstance(self.sigma_n, (int, float)):
            check_range("--sigma-n", self.sigma_n, 0.0, None, low_open=False)
        if self.size is not None:   # phantoms are simulated, and files resampled, at size × size
            check_fits_in_memory(SLICE_WORK * self.size ** 2 * max(self.coils, 1), f"--size {self.size}")
        if self.maps not in ESPIRIT_METHODS:
            raise InputError(None, f"--maps must be {' or '.join(ESPIRIT_METHODS)} (got {self.maps!r})")

    def mask_spec(self) -> MaskSpec:
        try:
            return MaskSpec(kind=self.mask, acceleration=self.accel, center_fraction=self.center_fraction)
        except ValueError as e:
            raise InputError(None, str(e)) from None

    def run_name(self) -> str:
        """The default run folder of `train` on these data: mri-r4, ct-v20, image-noise."""
        if self.modality == "mri":
            return f"mri-r{self.accel:g}"
        if self.modality == "ct":
            return f"ct-v{self.views}"
        return f"image-{self.corruption}"

    def describe_operator(self, op: dict) -> str:
        """The written set's operator in a few words: "mri R=4, 1 coil(s)", "ct 60/180 views", "image noise"."""
        if self.modality == "mri":
            return f"mri R={self.accel:g}, {op['coils']} coil(s)"
        if self.modality == "ct":
            return f"ct {self.views}/{self.n_angles} views"
        return f"image {self.corruption}"


def make_options(op: dict) -> dict:
    """The `MakeSpec` options that give the operator spec `op` (the inverse of `operator_spec`): the
    modality and the operator's own settings (mask, coils; views; corruption)."""
    if op["family"] == "mri":
        m = op["mask"]
        return dict(modality="mri", accel=float(m["acceleration"]), mask=m["kind"],
                    center_fraction=float(m["center_fraction"]), coils=int(op["coils"]))
    if op["family"] == "ct":
        return dict(modality="ct", views=int(op["n_views"]), n_angles=int(op["n_angles"]), view_kind=op["view_kind"])
    return dict(modality="image", **{k: op[k] for k in ("corruption", "p", "delta", "blur_kernel", "blur_std",
                                                        "factor") if k in op})


@dataclass
class MakeSummary:
    out: Path
    n_train: int
    n_test: int
    operator: dict
    measurement_shape: tuple


def make_measurement_set(make_spec: MakeSpec, out: str | Path, force: bool = False,
                         progress: Callable[[int, int, str], None] | None = None) -> MakeSummary:
    """Build the set; `progress(done, total, where)` is called after each slice, `where` naming the split
    and the volume ("train, volume 3 of 20")."""
    make_spec.validate()
    out = Path(out)
    if out.exists() and not force:
        raise InputError(out, "exists (use --force to replace it)")
    train, test, split_how = _volumes(make_spec)
    jobs = {"train": list(_slice_jobs(make_spec, train, make_spec.n_train)), "test": list(_slice_jobs(make_spec, test, make_spec.n_test))}
    total = sum(len(j) for j in jobs.values())
    operator = operator_spec(make_spec, jobs)
    shapes = {}
    volume_number = {name: k for k, name in
                     enumerate(dict.fromkeys(vol.name for js in jobs.values() for vol, _ in js), 1)}
    numbers = {split: [volume_number[vol.name] for vol, _ in js] for split, js in jobs.items()}
    with building(out, _fingerprint(make_spec), numbers, overwrite=force) as part:
        done = kept = sum(part.samples.values())
        if kept and progress and part.next_volume():   # the bar starts where the interrupted build stopped
            progress(kept, total, f"continuing from volume {part.next_volume()} of {len(volume_number)}")
        for split, split_jobs in jobs.items():
            with part.writer(split, make_spec.modality, operator, make_spec.seed) as w:
                todo = split_jobs[len(w):]   # after the whole volumes an interrupted build wrote
                for k, (job, sample) in enumerate(zip(todo, _run(make_spec, operator, todo, split == "test")), len(w)):
                    if done == kept:   # the first sample sizes them all: the set fits on its disk, or nothing
                        check_free_space(out, (total - kept) * sum(getattr(v, "nbytes", 8) for v in sample.values()),
                                         f"writing the measurement set ({total - kept} samples)")
                        if split_how == "slices of one volume":   # once its first slice is prepared, so a
                            _warn_one_volume(train[0].name)       # refused file is one line, not two
                    w.append(source=job[0].name, slice_index=job[1], **sample)
                    if k + 1 == len(split_jobs) or split_jobs[k + 1][0].name != job[0].name:
                        part.volume_done(split)
                    done += 1
                    if progress:
                        progress(done, total, f"{split}, volume {volume_number[job[0].name]} of {len(volume_number)}")
                shapes[split] = w.sample_shape("measurements")
        card = dict(format="rsd-sci measurement set", version=VERSION, made_with=asdict(make_spec),
                    operator=operator, split=split_how, n_train=len(jobs["train"]), n_test=len(jobs["test"]),
                    train_volumes=sorted({j[0].name for j in jobs["train"]}),
                    test_volumes=sorted({j[0].name for j in jobs["test"]}))
        (part.folder / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    return MakeSummary(out, len(jobs["train"]), len(jobs["test"]), operator, shapes["train"])


def _input_files(make_spec: MakeSpec) -> tuple[list[Path], list[Path]]:
    """The source files (or DICOM series folders) of --input and of --test-input; none for phantoms."""
    if make_spec.source == "phantom":
        return [], []
    return (sources.list_files(make_spec.source, Path(make_spec.input)),
            sources.list_files(make_spec.source, Path(make_spec.test_input)) if make_spec.test_input else [])


def _fingerprint(make_spec: MakeSpec) -> str:
    """The same options, input files and format version: the same set (an interrupted build continues)."""
    return fingerprint(asdict(make_spec) | {"format_version": VERSION}, [f for fs in _input_files(make_spec) for f in fs])


def _warn_one_volume(name: str) -> None:
    log.warning("one volume (%s): train and test are blocks of its slices, %d dropped at each cut; "
                "give two volumes or more (or --test-input) for a split by volume", name, sources.GUARD_SLICES)


def _volumes(make_spec: MakeSpec):
    if make_spec.source == "phantom":
        size = make_spec.size or 64
        return (sources.phantom_volumes(make_spec.modality, make_spec.n_train or 256, size, make_spec.seed, "train"),
                sources.phantom_volumes(make_spec.modality, make_spec.n_test or 32, size, make_spec.seed, "test"), "phantoms")
    files, test_files = _input_files(make_spec)
    if test_files:
        return (sources.file_volumes(make_spec.source, make_spec.modality, files, make_spec.size),
                sources.file_volumes(make_spec.source, make_spec.modality, test_files, make_spec.size), "test input")
    return sources.split_volumes(sources.file_volumes(make_spec.source, make_spec.modality, files, make_spec.size),
                                 make_spec.test_fraction, make_spec.seed)


def _slice_jobs(make_spec, volumes, cap) -> Iterator[tuple]:
    n = 0
    for vol in volumes:
        for i in vol.indices():
            if cap and n >= cap:
                return
            yield vol, i
            n += 1


def operator_spec(make_spec: MakeSpec, jobs) -> dict:
    first = next((j for js in jobs.values() for j in js), None)
    if first is None:
        raise InputError(make_spec.input, "no slices to process")
    sl = first[0].read(first[1])
    if make_spec.modality == "mri":
        if sl.kspace is not None:
            h, w = sl.recon_size[0], sl.kspace.shape[-1]
            coils = make_spec.virtual_coils or sl.kspace.shape[0]
        else:
            (h, w), coils = sl.image.shape, make_spec.coils
        return dict(family="mri", shape=[int(h), int(w)], coils=int(coils), mask=make_spec.mask_spec().to_dict())
    if make_spec.modality == "ct":
        return dict(family="ct", image_size=int(sl.image.shape[-1]), n_angles=make_spec.n_angles,
                    n_views=make_spec.views, view_kind=make_spec.view_kind)
    return dict(family="image", shape=list(sl.image.shape), corruption=make_spec.corruption, p=make_spec.p,
                delta=make_spec.delta, blur_kernel=make_spec.blur_kernel, blur_std=make_spec.blur_std, factor=make_spec.factor)


def _run(make_spec, operator, jobs, with_target) -> Iterator[dict]:
    tasks = ((make_spec, operator, vol.name, i, vol.read(i), with_target) for vol, i in jobs)
    if make_spec.workers <= 1:
        yield from (_slice_of_set(*t) for t in tasks)
        return
    # spawn, not fork: a fork after torch has started its thread pool can deadlock in the child
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(make_spec.workers, mp_context=ctx, initializer=_single_threaded) as pool:
        window: deque = deque()  # at most 2 slices per worker in flight: sets larger than memory stream
        for task in tasks:
            window.append(pool.submit(_slice_of_set, *task))
            if len(window) >= 2 * make_spec.workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _single_threaded() -> None:
    """Each worker process uses one core (N workers, N cores)."""
    import torch

    torch.set_num_threads(1)


def _slice_of_set(make_spec: MakeSpec, operator: dict, name: str, index: int, sl, with_target: bool) -> dict:
    """`process_slice` for a set: what the preparation refuses in a slice (all-zero k-space: no noise
    to estimate, too few calibration lines) names the input file and the slice."""
    try:
        return process_slice(make_spec, operator, name, index, sl, with_target)
    except ValueError as err:
        raise InputError(name, f"slice {index}: {err}") from None


def process_slice(make_spec: MakeSpec, operator: dict, name: str, index: int, sl, with_target: bool) -> dict:
    rng = np.random.default_rng((sources.name_seed(name), index, make_spec.seed))
    if make_spec.modality == "mri":
        return _process_mri(make_spec, operator, name, index, sl, rng, with_target)
    if make_spec.modality == "ct":
        from rsd_sci.physics.ct import view_mask

        mask = view_mask(make_spec.n_angles, make_spec.views, make_spec.view_kind)
        if make_spec.view_kind == "sparse":  # each volume its own rotation of the view set (seeded by name)
            mask = np.roll(mask, int(np.random.default_rng(sources.name_seed(name)).integers(make_spec.n_angles // make_spec.views)))
        return simulate_ct.from_attenuation(sl.image, make_spec.n_angles, mask, _sigma(make_spec), rng, with_target)
    return simulate_image.from_magnitude(sl.image, operator, _sigma(make_spec), rng, with_target)


def _maps_device(make_spec: MakeSpec) -> str:
    """torch ESPIRiT runs on the make_spec's device; sigpy on the CPU, as it always has here (no cupy)."""
    return make_spec.device if make_spec.maps == "torch" else "cpu"


DEFAULT_DENOISING_SIGMA = 0.2  # --corruption noise without --sigma-n: the DSD papers' middle setting


def _sigma(make_spec: MakeSpec):
    """The noise to simulate: the user's, else 0.2 for denoising (noise is the corruption), else none."""
    if make_spec.sigma_n is not None:
        return make_spec.sigma_n
    return DEFAULT_DENOISING_SIGMA if make_spec.modality == "image" and make_spec.corruption == "noise" else 0.0


def _from_file_kspace(make_spec, name: str, index: int, sl, mask, with_target: bool) -> dict:
    """`simulate_mri.from_kspace` of a file's slice, read without its finiteness pass: NaN or Inf anywhere
    that matters reach the (cropped, compressed, smaller) stored measurements or make a step fail, and only
    then is the raw slice checked, so the error names the cause; good data pay one pass over the output."""
    def non_finite_input() -> bool:
        return not np.isfinite(sl.kspace.view(np.float32)).all()

    try:
        out = simulate_mri.from_kspace(sl.kspace, sl.recon_size, mask, measured=sl.file_mask is not None,
                                       multicoil=sl.multicoil, virtual_coils=make_spec.virtual_coils,
                                       sigma_n=make_spec.sigma_n, with_target=with_target,
                                       maps_method=make_spec.maps, device=_maps_device(make_spec))
    except (ValueError, np.linalg.LinAlgError, RuntimeError):
        if non_finite_input():
            raise InputError(name, f"k-space slice {index} holds NaN or Inf") from None
        raise
    if not np.isfinite(out["measurements"].view(np.float32)).all():
        if non_finite_input():
            raise InputError(name, f"k-space slice {index} holds NaN or Inf")
        raise InputError(name, f"slice {index}: the prepared measurements are not finite")
    return out


def _process_mri(make_spec, operator, name, index, sl, rng, with_target) -> dict:
    h, w = operator["shape"]
    if sl.kspace is not None and sl.file_mask is not None:
        from rsd_sci.physics.masks import check_mask_fits

        try:
            check_mask_fits(sl.file_mask, sl.kspace.shape[-1])
        except ValueError as e:
            raise InputError(name, str(e)) from None
        fm = sl.file_mask.astype(bool)
        mask = LineMask(mask=fm, center=simulate_mri.center_lines_of(fm), acceleration=fm.size / max(fm.sum(), 1))
    else:
        mask = make_spec.mask_spec().make((h, w), seed=seed_from_name(name))
    if sl.kspace is not None:
        return _from_file_kspace(make_spec, name, index, sl, mask, with_target)
    maps = None
    if make_spec.coils > 1:
        from rsd_sci.physics.coil_maps import birdcage_maps

        maps = birdcage_maps(make_spec.coils, h, w)
    return simulate_mri.from_image(sl.image, mask, maps, _sigma(make_spec), rng, with_target,
                                   maps_method=make_spec.maps, device=_maps_device(make_spec))
