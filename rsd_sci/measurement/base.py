"""The measurement model: how one operator family meets the diffusion network, with one batch's operator.

One class per family (`mri.py`, `ct.py`, `image.py`, built from an operator spec by
`rsd_sci.measurement.family_of`, the one place a family is named), as deepinv's physics object holds its
own mask and maps. An instance holds the spec and what the family knows for a whole measurement set (the
network layout, the loss member, the default sampler stop, the baselines that fit, the metric view);
`measure(batch)` returns the same class bound to a batch, its operator built ONCE. The bound object is
what every consumer of a batch takes, as deepinv's methods take `physics`: losses, samplers, the
distiller, A-DPS, the generator prior and the evaluation. One without a batch (a model's `family`, a
report's) answers only what needs no data.

Two kinds (docs/method.md, Phase 1):

    "data"     the teacher models the corrupted images y themselves (noise, blur, down-sampling:
               members 1 and 2). Network image = y, (B, 1, h, w); no conditioning.
    "ambient"  the teacher sees a further-thinned measurement (pixel masks, MRI, CT: members 3 and 4).

For the ambient kinds, with A = P_M·T the operator of the sample and Â = P_M̂·T the further operator
(M̂ ⊂ M, drawn once per training sample by `further`, which returns the batch with Â), the network image
of a clean image x is

    m_hat.project(x)       = R̂·Â x                R̂ a fixed linear reconstruction of Â
    m_hat.network_input()  = R̂(P_M̂ y)             computable from the measurement alone
    so  R̂·Â(x + σ n) = network_input() + σ·project(n)        when y = A x (+ noise on M),

and the loss is measured on the ORIGINAL entries M:

    m.residual(d) = ‖W·P_M(A d − y)‖² / |M|        (B,)

with |M| the number of measured REAL entries per sample (a complex k-space entry counts twice, so that
the measurement-domain loss of a full single-coil mask equals the mean over the two real network
channels of (D − x)², by orthonormality of the centred FFT). Per family (the files beside this one):

    family            channels  cond (channels)              R̂                        W
    image: noise/     1         None (0)                     — (network image = y)     — (mean over y)
      blur/downsample
    image: inpaint    1         M̂ (1)                        M̂ ⊙ ·                    I
    mri               2         [line pattern of M̂, 1] (2)   Σ_c conj(Ŝ_c) F⁻¹(M̂ ⊙ ·), I
                                                             Ŝ = S / RSS(S) (unit RSS)
    ct                1         [1] (1)                      FBP of the views in M̂     ramp filter

Further masks are fixed per training sample (the published "masks fixed per training image"): each
sample's draw comes from its own CPU generator keyed by (seed, global index)
(`rsd_sci.keyed_random.further_generator`), never by the step or the rank, so every step and any number
of processes see the same M̂, on any device.

Example:
    >>> import torch
    >>> from rsd_sci.measurement import family_of
    >>> family = family_of({"family": "image", "shape": [4, 4], "corruption": "inpaint", "delta": 0.5})
    >>> (family.kind, family.channels, family.cond_channels)
    ('ambient', 1, 1)
    >>> m = family.measure({"y": torch.ones(1, 1, 4, 4), "masks": torch.ones(1, 1, 4, 4)})
    >>> m.residual(torch.ones(1, 1, 4, 4)).tolist()
    [0.0]
"""

from __future__ import annotations

import abc
import copy
from typing import Mapping

import numpy as np
import torch

from rsd_sci.keyed_random import further_generators
from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.precision import promote, real_dtype_of

MEMBERS = ("plain", "tweedie", "ambient")


def squared_norm(t: torch.Tensor) -> torch.Tensor:
    """Σ over all but the batch dim of |t|² (complex: re² + im²), (B,)."""
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.square().flatten(1).sum(dim=1)


class Measurement(abc.ABC):
    """One operator family's measurement model and, once bound, one batch under it (module docstring).

        family = family_of(spec)                                the family: what needs no data
        m = family.measure(batch)                               the batch, its operator A built once
        m.A(x), m.A_adjoint(y), m.R(y), m.keep_measured(y)      the operator
        m_hat = m.further(seed)                                 the batch with Â, fixed per sample index
        m_hat.network_input(), m_hat.project(x), m_hat.cond()   the network's view of Â
        m.residual(d)                                           ‖W·P_M(A d − y)‖²/|M| on the ORIGINAL rows

    What the family knows: kind ("data" | "ambient"), channels (network image channels), cond_channels,
    spec, default_stop_sigma (the teacher sampler's default stop, from kind), baselines (the classical
    `rsd-sci reconstruct` methods that fit), zero_filled (the baseline the report's headline compares
    the generator prior with, or None), teacher_is_clean_prior (whether the teacher models clean images,
    so A-DPS can use it; not for blur and down-sampling, whose teachers model A x), consistency_steps (the
    CG steps on ‖A x − y‖² that finish a generator-prior reconstruction,
    `rsd_sci.posterior.data_consistency`; 0 where A subsamples nothing and they would only fit the noise
    or the blur back in). A bound one holds batch (y, index, masks, centers, coil_maps, sigma_n) and op.
    Subclasses build the operator (`operator`), draw the further operator (`further`) and say how the
    network sees an operator (`project`, `network_input`, `cond`).
    """

    kind = "ambient"
    channels = 1
    cond_channels = 0
    generator_loss_space = "projected"   # what --loss-space auto is for this family (docs/method.md)
    baselines: tuple[str, ...] = ()
    zero_filled: str | None = None
    teacher_is_clean_prior = True
    consistency_steps = 0
    metric_note = ""              # how the metrics view the images, for reports ("" when as they are)

    def __init__(self, spec: Mapping):
        """The family of an operator spec, bound to no batch (`measure` binds one)."""
        self.spec = dict(spec)
        self.batch: Mapping[str, torch.Tensor] | None = None
        self._op: LinearOperator | None = None
        self._count: torch.Tensor | None = None   # |M|, see `measured_count`

    def measure(self, batch: Mapping[str, torch.Tensor], op: LinearOperator | None = None) -> "Measurement":
        """The family bound to `batch` (y, index, masks, centers, coil_maps, sigma_n) and its operator, built
        once here unless given (`op`: a further operator, the same one with another y)."""
        m = copy.copy(self)
        m.batch, m._op, m._count = batch, self.operator(batch) if op is None else op, None
        return m

    def with_y(self, y: torch.Tensor) -> "Measurement":
        """The same operator and per-sample parts with another measurement (a synthetic one)."""
        return self.measure(dict(self.batch, y=y), self.op)

    def _unbound(self) -> TypeError:
        return TypeError(f"{type(self).__name__} holds no batch: measure(batch) first")

    # -- the family, without data ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.spec.get("family"))

    @property
    def default_stop_sigma(self) -> float:
        """The teacher sampler's default stop: 0.1 for Ambient teachers, whose x0-prediction drifts back to
        their thinned input below it (docs/method.md, "Sampling"); 0 (none) for data-space ones."""
        return 0.1 if self.kind == "ambient" else 0.0

    def describe(self) -> str:
        """One line for reports: the family and its operator's settings."""
        return self.name

    def member(self, sigma_n) -> str:
        """The teacher's loss member for data with these σ_n (a float or (N,) values): "ambient" here."""
        return "ambient"

    def metric_view(self, images: np.ndarray, offset) -> np.ndarray:
        """What the metrics and figures compare, (n, H, W) float32 (unchanged here; CT overrides)."""
        return images

    def to_image(self, t: torch.Tensor) -> torch.Tensor:
        """Network channels (B, channels, H, W) -> the operator's image layout (real: float32/64)."""
        return promote(t)

    def to_channels(self, x: torch.Tensor) -> torch.Tensor:
        """The operator's image layout -> network channels (B, channels, H, W)."""
        return x

    def identifiable(self, f: torch.Tensor) -> torch.Tensor:
        """f (network channels) where any operator of the family measures the image, 0 elsewhere: the
        full-image generator loss compares only there (all of it here; CT: the scanned disc)."""
        return f

    @abc.abstractmethod
    def operator(self, batch: Mapping[str, torch.Tensor]) -> LinearOperator:
        """The linear operator A of one batch (per-sample masks and maps from `batch`)."""

    # -- what the batch holds -----------------------------------------------------------------------------
    @property
    def op(self) -> LinearOperator:
        """The batch's operator A (Â after `further`)."""
        if self._op is None:
            raise self._unbound()
        return self._op

    @property
    def y(self) -> torch.Tensor:
        if self.batch is None:
            raise self._unbound()
        return self.batch["y"]

    @property
    def index(self) -> torch.Tensor:
        return self.batch["index"]

    @property
    def sigma_n(self) -> torch.Tensor | None:
        return self.batch.get("sigma_n")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    # -- the operator -----------------------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the maths' name)
        return self.op.A(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.op.A_adjoint(y)

    def R(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.op.R(y)

    def keep_measured(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.keep_measured(y)

    @abc.abstractmethod
    def further(self, seed: int = 0, generator: torch.Generator | None = None,
                index: torch.Tensor | None = None) -> "Measurement":
        """Â of every sample: the same batch with the further operator, keyed by (seed, index), index
        default batch["index"] (fixed per sample); with a CPU `generator`, every row drawn from it instead
        (fast, not keyed: the distillation's fresh operators in tests that need no rank invariance).
        The data kind returns itself."""

    def _generators(self, seed: int, generator: torch.Generator | None,
                    index: torch.Tensor | None) -> list[torch.Generator]:
        """The per-sample CPU generators of `further` (`rsd_sci.keyed_random.further_generators`)."""
        return further_generators(self.batch if index is None else dict(self.batch, index=index), seed, generator)

    # -- the network's view -------------------------------------------------------------------------------
    def noise_shape(self) -> tuple[int, ...]:
        """Shape of a standard-normal draw in network channels, (B, channels, H, W)."""
        return tuple(self.y.shape)

    def generator_shape(self) -> tuple[int, ...]:
        """Shape of a clean image in network channels, (B, channels, H, W): the generator's output."""
        return self.noise_shape()

    @abc.abstractmethod
    def project(self, x_image: torch.Tensor) -> torch.Tensor:
        """P x = R̂·Â x of an image (operator layout) in network channels, Â this batch's operator (the
        further one of `further`; data kind: A x)."""

    @abc.abstractmethod
    def network_input(self) -> torch.Tensor:
        """R̂(P_M̂ y) in network channels: the zero-filled / FBP / masked image (data kind: y itself)."""

    def reproject(self, f: torch.Tensor) -> torch.Tensor:
        """P f of a tensor in network channels (a teacher's output, noise): R̂·Â f here; the data kind: f."""
        return self.project(self.to_image(f))

    def cond(self) -> torch.Tensor | None:
        """Conditioning channels (B, cond_channels, H, W) of this batch's operator, or None."""
        return None

    def generator_input(self, z_image: torch.Tensor):
        """(z_in, cond): the generator's scaled input noise σ_init·z (image layout) in the teacher's input
        format, R̂·Â z with Â's channels (called on a fresh further operator at the training density)."""
        return self.project(z_image), self.cond()

    # -- data consistency ------------------------------------------------------------------------------
    def weight(self, r: torch.Tensor) -> torch.Tensor:
        """The residual weight W (identity here; the ramp filter for CT)."""
        return r

    def measured_count(self) -> torch.Tensor:
        """|M|: measured REAL entries per sample, (B,) float (complex entries count twice), counted once
        (the operator and y are fixed)."""
        if self._count is None:
            y = promote(self.y)
            ones = torch.ones(y.shape, dtype=real_dtype_of(y.dtype), device=y.device)
            count = (self.op.keep_measured(ones) != 0).flatten(1).sum(dim=1).to(ones.dtype)
            self._count = count * (2.0 if y.is_complex() else 1.0)
        return self._count

    def misfit(self, x_image: torch.Tensor) -> torch.Tensor:
        """r = P_M(A x − y) in y's layout, autocast off (physics in float32/complex64)."""
        with torch.autocast(device_type=self.y.device.type, enabled=False):
            return self.op.keep_measured(self.op.A(promote(x_image)) - promote(self.y))

    def output_misfit(self, x0: torch.Tensor) -> torch.Tensor:
        """r of a teacher's x0-prediction (network channels), in the space the teacher models:
        P_M(A·x0 − y) here; data kind x0 − y."""
        return self.misfit(self.to_image(x0))

    def residual(self, d_image: torch.Tensor) -> torch.Tensor:
        """‖W·P_M(A d − y)‖² / |M| per sample, (B,), on the ORIGINAL operator's measured entries (data
        kind: the mean ‖d − y‖²)."""
        count = self.measured_count()
        with torch.autocast(device_type=self.y.device.type, enabled=False):
            return squared_norm(self.weight(self.misfit(d_image))) / count.clamp_min(1.0)

    def consistency(self, x_image: torch.Tensor) -> torch.Tensor:
        """‖P_M(A x − y)‖² / |M| per sample, (B,), unweighted, of a CLEAN image x (every kind applies A):
        the data term of the generator prior."""
        count = self.measured_count()
        return squared_norm(self.misfit(x_image)) / count.clamp_min(1.0)

    def default_zeta(self) -> torch.Tensor:
        """A-DPS's data-consistency step ζ = 1/‖A‖ per sample, (B,): 1 here (‖A‖ = 1; CT overrides)."""
        return torch.ones(self.y.shape[0])

    def measured_power(self) -> torch.Tensor:
        """The mean power per frequency of the batch's measurements, (F,) float64: what blur takes away,
        seen without clean data (the distillation's held-out signal). Here y is an image, (B, C, H, W):
        its radially averaged power spectrum (MRI and CT override, in their measured domains)."""
        from rsd_sci.metrics.distribution import radial_power_spectrum

        return radial_power_spectrum(promote(self.y))
