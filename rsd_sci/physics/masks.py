"""k-space sampling masks: fastMRI's Cartesian line masks, 2-D variable-density masks, further masks.

Line masks (phase-encode columns of width W) follow fastMRI's published rules, so the same file name
gives the same mask as fastMRI's `RandomMaskFunc`, `EquiSpacedMaskFunc` and `EquispacedMaskFractionFunc`
called with `seed=tuple(map(ord, file_name))` (`seed_from_name`). With a legacy `RandomState(seed)`:

1. pick the pair: i = randint(len(center_fractions)); (f, R) = (center_fractions[i], accelerations[i]);
2. n_low = round(W·f) (Python rounding) centre lines starting at (W - n_low + 1) // 2;
3. outer lines, by kind:
   random:               uniform(size=W) < (W/R - n_low) / (W - n_low)   (expected W/R lines in total)
   equispaced:           every R-th line from offset = randint(0, round(R))
   equispaced_fraction:  R' = R·(n_low - W) / (n_low·R - W), offset = randint(0, round(R')), lines at
                         rint(arange(offset, W - 1, R')) (so that about W/R lines are sampled in total).
The mask is the union of centre and outer lines.

2-D masks (H, W) for simulation: "poisson" (sigpy's variable-density Poisson disc, crop_corner=False so
the corners stay sparsely sampled rather than cut) and "gaussian" (independent Bernoulli draws with
probability exp(-r²/(2s²)), r the normalised k-space radius, s found by bisection so that the expected
number of samples is H·W/R). The calibration box is fully sampled in both.

Further masks M̂ ⊂ M (Ambient diffusion in the measurement domain): keep the calibration lines and drop
randomly chosen sampled non-centre lines (or points) until round(W/(R+1)) remain, R = W/|M|
(e.g. W = 320, R = 4: 80 lines -> 64 lines).

Example:
    >>> from rsd_sci.physics.masks import MaskSpec, seed_from_name
    >>> m = MaskSpec("random", 4).make((640, 368), seed_from_name("file1000001.h5"))
    >>> int(m.center.sum()), m.mask.shape
    (29, (368,))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np
import torch

LINE_KINDS = ("random", "equispaced", "equispaced_fraction")
POINT_KINDS = ("gaussian", "poisson")
POISSON_ATTEMPTS = 8  # seeds tried (seed, seed + 1, ...) when sigpy's Poisson sampler misses its tolerance


def seed_from_name(name: str) -> tuple[int, ...]:
    """fastMRI's per-file seed: the character codes of the file's base name, tuple(map(ord, name))."""
    base = PurePath(str(name)).name
    if not base:
        raise ValueError(f"cannot derive a mask seed from the empty file name {name!r}")
    return tuple(map(ord, base))


@dataclass
class LineMask:
    """A Cartesian line mask over the W phase-encode columns.

    mask: bool (W,) sampled lines; center: bool (W,) the calibration lines (never thinned);
    acceleration: the realised W / mask.sum().
    """

    mask: np.ndarray
    center: np.ndarray
    acceleration: float

    @property
    def num_low_frequencies(self) -> int:
        return int(np.count_nonzero(self.center))


@dataclass
class Mask2D:
    """A 2-D k-space mask: mask bool (H, W), center bool (H, W) (calibration box), realised acceleration."""

    mask: np.ndarray
    center: np.ndarray
    acceleration: float


def _realised(mask: np.ndarray) -> float:
    n = int(np.count_nonzero(mask))
    return float(mask.size) / n if n else float("inf")


# -- fastMRI line masks -------------------------------------------------------------------------------
def fastmri_line_mask(kind: str, width: int, center_fractions: Sequence[float], accelerations: Sequence[int],
                      seed: int | tuple[int, ...] | None) -> LineMask:
    """fastMRI's line mask for k-space `width` columns (see the module docstring for the rules).

    Equal to fastMRI's mask function of `kind` built with (center_fractions, accelerations) and called
    with shape (..., H, W, 2) and this `seed`; seed None draws from fresh OS entropy.
    """
    if kind not in LINE_KINDS:
        raise ValueError(f"unknown line-mask kind {kind!r}; expected one of {', '.join(LINE_KINDS)}")
    if len(center_fractions) == 0 or len(center_fractions) != len(accelerations):
        raise ValueError("center_fractions and accelerations must be non-empty and of the same length")
    rng = np.random.RandomState(seed)
    choice = rng.randint(len(center_fractions))
    fraction, accel = center_fractions[choice], accelerations[choice]
    n_low = round(width * fraction)
    center = np.zeros(width, dtype=bool)
    start = (width - n_low + 1) // 2
    center[start:start + n_low] = True

    outer = np.zeros(width, dtype=bool)
    if kind == "random":
        prob = (width / accel - n_low) / (width - n_low)
        outer = rng.uniform(size=width) < prob
    elif kind == "equispaced":
        if float(accel) != int(accel):
            raise ValueError(f"equispaced masks need an integer acceleration, got {accel}")
        offset = rng.randint(0, high=round(accel))
        outer[offset::int(accel)] = True
    else:
        step = accel * (n_low - width) / (n_low * accel - width)
        offset = rng.randint(0, high=round(step))
        outer[np.around(np.arange(offset, width - 1, step)).astype(np.uint)] = True
    mask = center | outer
    return LineMask(mask=mask, center=center, acceleration=_realised(mask))


# -- 2-D variable-density masks -------------------------------------------------------------------------
def calibration_box(shape: tuple[int, int], calib: tuple[int, int]) -> np.ndarray:
    """bool (H, W): the centred calib box, rows int(H/2 - ch/2) : int(H/2 + ch/2) (sigpy's placement)."""
    h, w = shape
    box = np.zeros((h, w), dtype=bool)
    box[int(h / 2 - calib[0] / 2):int(h / 2 + calib[0] / 2), int(w / 2 - calib[1] / 2):int(w / 2 + calib[1] / 2)] = True
    return box


def _gaussian_mask(shape, acceleration, box, rng) -> np.ndarray:
    """Bernoulli(p) outside the box with p = exp(-r²/(2s²)); s bisected so E[count] = H·W/R."""
    h, w = shape
    ky = (np.arange(h) - h / 2) / (h / 2)
    kx = (np.arange(w) - w / 2) / (w / 2)
    r2 = (ky[:, None] ** 2 + kx[None, :] ** 2)[~box]
    target = h * w / acceleration - box.sum()

    def expected(log_s: float) -> float:
        return float(np.exp(-r2 / (2 * np.exp(2 * log_s))).sum())

    lo, hi = np.log(1e-4), np.log(1e4)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if expected(mid) < target else (lo, mid)
    s2 = np.exp(2 * 0.5 * (lo + hi))
    prob = np.zeros((h, w))
    prob[~box] = np.exp(-r2 / (2 * s2))
    return box | (rng.random((h, w)) < prob)


def variable_density_mask(kind: str, shape: tuple[int, int], acceleration: float,
                          calib: tuple[int, int] = (24, 24), seed: int = 0) -> np.ndarray:
    """A 2-D variable-density mask, bool (H, W), calibration box fully sampled.

    kind "poisson": sigpy.mri.poisson (crop_corner=False; its realised acceleration is within 0.1 of
    the target; where sigpy cannot reach it for `seed` the seeds seed + 1, ... are tried, up to
    POISSON_ATTEMPTS); "gaussian": independent Bernoulli draws, expected acceleration exactly the target.
    acceleration 1 returns a full mask.
    """
    h, w = int(shape[0]), int(shape[1])
    if kind not in POINT_KINDS:
        raise ValueError(f"unknown 2-D mask kind {kind!r}; expected one of {', '.join(POINT_KINDS)}")
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    box = calibration_box((h, w), calib)
    if box.sum() >= h * w / acceleration and acceleration > 1:
        raise ValueError(f"the {calib[0]}x{calib[1]} calibration box alone exceeds the sampling budget of "
                         f"acceleration {acceleration} on {h}x{w}")
    if acceleration == 1:
        return np.ones((h, w), dtype=bool)
    if kind == "gaussian":
        return _gaussian_mask((h, w), acceleration, box, np.random.default_rng(seed))
    from sigpy.mri import poisson

    for attempt in range(POISSON_ATTEMPTS):  # sigpy gives up on some seeds; the next seeds are tried
        try_seed = None if seed is None else (int(seed) + attempt) % 2**32
        try:
            mask = poisson((h, w), acceleration, calib=tuple(calib), dtype=np.float32, crop_corner=False,
                           seed=try_seed)
            return np.asarray(mask).real > 0.5
        except ValueError:
            continue
    raise ValueError(f"sigpy's Poisson-disc sampler cannot reach acceleration {acceleration} on {h}x{w} "
                     f"(seeds {seed} to {seed}+{POISSON_ATTEMPTS - 1}); try another size, kind or acceleration")


# -- further masks (Ambient) -----------------------------------------------------------------------------
def further_drop_count(n_sampled: int, size: int, acceleration: float | None = None) -> int:
    """Samples to drop so that round(size / acceleration) remain; default acceleration R + 1, R = size/n.

    A fully sampled row (n = size) drops none by default: with nothing missing there is nothing for the
    Ambient loss to learn to fill in, so Â = A and the teacher is plain diffusion on clean images (the
    clean control of `--accel 1`).
    """
    if acceleration is None and n_sampled >= size:
        return 0
    target = size / n_sampled + 1 if acceleration is None else float(acceleration)
    return max(0, int(n_sampled) - int(round(size / target)))


def further_line_mask_torch(mask: torch.Tensor, center: torch.Tensor, drop: int | torch.Tensor,
                            generator: torch.Generator | None = None) -> torch.Tensor:
    """Batched further masks on any device: per row, drop `drop` sampled non-centre lines uniformly.

    mask, center: bool (B, W) (or (B, H·W) flattened points); drop: int or int tensor (B,) (clipped to
    the number of candidates). The generator (if any) must live on mask's device. Returns bool (B, W).
    Each row ranks its candidates by i.i.d. uniform keys and drops the `drop` smallest: a uniformly
    random subset of that size.
    """
    mask, center = mask.bool(), center.bool()
    candidates = mask & ~center
    keys = torch.rand(mask.shape, generator=generator, device=mask.device)
    keys = torch.where(candidates, keys, torch.full_like(keys, 2.0))
    order = keys.argsort(dim=-1)
    rank = torch.empty_like(order).scatter_(-1, order, torch.arange(mask.shape[-1], device=mask.device)
                                            .expand_as(order).contiguous())
    n_drop = torch.as_tensor(drop, device=mask.device).reshape(-1, 1)
    return mask & ~(candidates & (rank < n_drop))


# -- the user-facing spec -----------------------------------------------------------------------------------
def _int_seed(seed: int | tuple[int, ...] | None) -> int | None:
    """A 32-bit integer seed for generators that need one (a tuple seed is hashed by SeedSequence)."""
    if seed is None:
        return None
    if isinstance(seed, (int, np.integer)):
        return int(seed) % 2**32
    return int(np.random.SeedSequence(list(seed)).generate_state(1)[0])


@dataclass
class MaskSpec:
    """What mask to draw: kind, acceleration R >= 1 and the fully sampled centre fraction.

    1-D kinds ("random", "equispaced", "equispaced_fraction") give fastMRI line masks with
    center_fraction; 2-D kinds ("gaussian", "poisson") a calibration box of
    (round(H·center_fraction), round(W·center_fraction)).
    """

    kind: str
    acceleration: float
    center_fraction: float = 0.08

    def __post_init__(self):
        if self.kind not in LINE_KINDS + POINT_KINDS:
            raise ValueError(f"unknown mask kind {self.kind!r}; expected one of "
                             f"{', '.join(LINE_KINDS + POINT_KINDS)}")
        if not self.acceleration >= 1:
            raise ValueError(f"acceleration must be >= 1, got {self.acceleration}")
        if not 0 < self.center_fraction < 1:
            raise ValueError(f"center_fraction must lie in (0, 1), got {self.center_fraction}")
        if self.is_lines and self.center_fraction * self.acceleration >= 1 and self.acceleration > 1:
            raise ValueError(f"center_fraction {self.center_fraction} alone samples more than 1/"
                             f"{self.acceleration} of k-space; use center_fraction < {1 / self.acceleration:.4g}")
        if self.kind == "equispaced" and float(self.acceleration) != int(self.acceleration):
            raise ValueError(f"equispaced masks need an integer acceleration, got {self.acceleration}")

    @property
    def is_lines(self) -> bool:
        return self.kind in LINE_KINDS

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "MaskSpec":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown mask-spec keys: {', '.join(sorted(unknown))}")
        return cls(**d)

    def make(self, shape: tuple[int, int], seed: int | tuple[int, ...] | None) -> LineMask | Mask2D:
        """The mask for k-space of image shape (H, W): LineMask over W, or Mask2D (H, W)."""
        h, w = int(shape[-2]), int(shape[-1])
        if self.is_lines:
            accel = int(self.acceleration) if float(self.acceleration).is_integer() else float(self.acceleration)
            return fastmri_line_mask(self.kind, w, [self.center_fraction], [accel], seed)
        calib = (max(1, round(h * self.center_fraction)), max(1, round(w * self.center_fraction)))
        mask = variable_density_mask(self.kind, (h, w), self.acceleration, calib, seed=_int_seed(seed))
        return Mask2D(mask=mask, center=calibration_box((h, w), calib), acceleration=_realised(mask))


def check_mask_fits(mask, width: int, height: int | None = None) -> None:
    """Raise ValueError unless `mask` (LineMask, Mask2D or array) fits k-space of this width (and height)."""
    arr = np.asarray(getattr(mask, "mask", mask))
    if arr.ndim == 0 or arr.ndim > 2:
        raise ValueError(f"a mask must be 1-D (W,) or 2-D (H, W), got shape {arr.shape}")
    if arr.shape[-1] != width:
        raise ValueError(f"the mask covers {arr.shape[-1]} k-space columns but the data have {width}")
    if arr.ndim == 2 and height is not None and arr.shape[0] != height:
        raise ValueError(f"the mask covers {arr.shape[0]} k-space rows but the data have {height}")
    if not np.any(arr):
        raise ValueError("the mask samples no k-space at all")
