"""The measurement model: how one operator family meets the diffusion network, and one batch of it.

`Family` holds what a family knows for a whole measurement set (built from its operator spec by
`rsd_sci.measurement.family_of`, the one place a family is named): the network layout, the loss member,
the default sampler stop, the baselines that fit, the metric view. `Family.measure(batch)` builds the
batch's operator ONCE and returns a `Measurement`, which every consumer takes as deepinv's methods take
`physics`: losses, samplers, the distiller, A-DPS, the generator prior and the evaluation.

Two kinds (docs/method.md, Phase 1):

    "data"     the teacher models the corrupted images y themselves (noise, blur, down-sampling:
               members 1 and 2). Network image = y, (B, 1, h, w); no conditioning.
    "ambient"  the teacher sees a further-thinned measurement (pixel masks, MRI, CT: members 3 and 4).

For the ambient kinds, with A = P_M·T the operator of the sample and Â = P_M̂·T the further operator
(M̂ ⊂ M, drawn once per training sample by `Measurement.further`), the network image of a clean image x is

    project(x)       = R̂·Â x                      R̂ a fixed linear reconstruction of Â
    network_input()  = R̂(P_M̂ y)                   computable from the measurement alone
    so  R̂·Â(x + σ n) = network_input() + σ·project(n)        when y = A x (+ noise on M),

and the loss is measured on the ORIGINAL entries M:

    residual(d) = ‖W·P_M(A d − y)‖² / |M|        (B,)

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
from typing import Mapping

import numpy as np
import torch

from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.precision import promote, real_dtype_of

MEMBERS = ("plain", "tweedie", "ambient")


def squared_norm(t: torch.Tensor) -> torch.Tensor:
    """Σ over all but the batch dim of |t|² (complex: re² + im²), (B,)."""
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.square().flatten(1).sum(dim=1)


class Family(abc.ABC):
    """What one operator family knows for a whole measurement set (see the module docstring).

    Attributes: kind ("data" | "ambient"), channels (network image channels), cond_channels, spec,
    default_stop_sigma (the teacher sampler's default stop, from kind), baselines (the classical
    `rsd-sci reconstruct` methods that fit), zero_filled (the baseline the report's headline compares
    the generator prior with, or None), teacher_is_clean_prior (whether the teacher models clean images,
    so A-DPS can use it; not for blur and down-sampling, whose teachers model A x), consistency_steps (the CG steps on ‖A x − y‖² that finish a
    generator-prior reconstruction, `rsd_sci.posterior.data_consistency`; 0 where A subsamples nothing
    and they would only fit the noise or the blur back in). Subclasses build the operator and implement
    the Ambient hooks.
    """

    kind = "ambient"
    channels = 1
    cond_channels = 0
    generator_loss_space = "projected"   # what --loss-space auto is for this family (docs/method.md)
    baselines: tuple[str, ...] = ()
    zero_filled: str | None = None
    teacher_is_clean_prior = True
    consistency_steps = 0

    @property
    def default_stop_sigma(self) -> float:
        """The teacher sampler's default stop: 0.1 for Ambient teachers, whose x0-prediction drifts back to
        their thinned input below it (docs/method.md, "Sampling"); 0 (none) for data-space ones."""
        return 0.1 if self.kind == "ambient" else 0.0

    def __init__(self, spec: Mapping):
        self.spec = dict(spec)

    @property
    def name(self) -> str:
        return str(self.spec.get("family"))

    # -- one batch ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def operator(self, batch: Mapping[str, torch.Tensor]) -> LinearOperator:
        """The linear operator A of one batch (per-sample masks and maps from `batch`)."""

    def measure(self, batch: Mapping[str, torch.Tensor]) -> "Measurement":
        """The batch with its operator, built once (batch: y, index, masks, centers, coil_maps, sigma_n)."""
        return Measurement(self, self.operator(batch), batch)

    # -- family facts ---------------------------------------------------------------------------------------
    metric_note = ""              # how the metrics view the images, for reports ("" when as they are)

    def describe(self) -> str:
        """One line for reports: the family and its operator's settings."""
        return self.name

    def member(self, sigma_n) -> str:
        """The teacher's loss member for data with these σ_n (a float or (N,) values): "ambient" here."""
        return "ambient"

    def metric_view(self, images: np.ndarray, offset) -> np.ndarray:
        """What the metrics and figures compare, (n, H, W) float32 (unchanged here; CT overrides)."""
        return images

    def default_zeta(self, op: LinearOperator, y: torch.Tensor) -> torch.Tensor:
        """A-DPS's data-consistency step ζ = 1/‖A‖ per sample, (B,): 1 here (‖A‖ = 1; CT overrides)."""
        return torch.ones(y.shape[0])

    def measured_power(self, op: LinearOperator, y: torch.Tensor) -> torch.Tensor:
        """The mean power per frequency of a batch of measurements, (F,) float64: what blur takes away,
        seen without clean data (the distillation's held-out signal). Here y is an image, (B, C, H, W):
        its radially averaged power spectrum (MRI and CT override, in their measured domains)."""
        from rsd_sci.metrics.distribution import radial_power_spectrum

        return radial_power_spectrum(y)

    # -- layouts --------------------------------------------------------------------------------------------
    def to_image(self, t: torch.Tensor) -> torch.Tensor:
        """Network channels (B, channels, H, W) -> the operator's image layout (real: float32/64)."""
        return promote(t)

    def to_channels(self, x: torch.Tensor) -> torch.Tensor:
        """The operator's image layout -> network channels (B, channels, H, W)."""
        return x

    def noise_shape(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
        """Shape of a standard-normal draw in network channels, (B, channels, H, W)."""
        return tuple(batch["y"].shape)

    def generator_shape(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
        """Shape of a clean image in network channels, (B, channels, H, W): the generator's output."""
        return self.noise_shape(batch)

    # -- per-operator hooks (Measurement calls them with its operator) ------------------------------------
    @abc.abstractmethod
    def further(self, op, batch: Mapping[str, torch.Tensor], seed: int, generator: torch.Generator | None = None):
        """Â: the Ambient further operator of every sample, fixed per global index (batch["index"]).

        With a CPU `generator`, every row is drawn from it instead (fast, not keyed: fresh operator
        draws of the distillation and of tests that need no rank invariance)."""

    def cond(self, op_hat, batch: Mapping[str, torch.Tensor]) -> torch.Tensor | None:
        """Conditioning channels (B, cond_channels, H, W), or None."""
        return None

    @abc.abstractmethod
    def project(self, op_hat, x_image: torch.Tensor) -> torch.Tensor:
        """Network channels of the image x seen through the teacher's operator (R̂·Â x; data kind: A x)."""

    @abc.abstractmethod
    def measured_input(self, op_hat, y: torch.Tensor) -> torch.Tensor:
        """Network channels of R̂(P_M̂ y): the measurement thinned to Â's entries and reconstructed."""

    def reproject(self, op_hat, f: torch.Tensor) -> torch.Tensor:
        """P(f) of a tensor already in network channels (a denoiser output, noise): R̂·Â f here."""
        return self.project(op_hat, self.to_image(f))

    def identifiable(self, f: torch.Tensor) -> torch.Tensor:
        """f (network channels) where any operator of the family measures the image, 0 elsewhere: the
        full-image generator loss compares only there (all of it here; CT: the scanned disc)."""
        return f

    def weight(self, op, r: torch.Tensor) -> torch.Tensor:
        """The residual weight W (identity here; the ramp filter for CT)."""
        return r

    def measured_count(self, op, y: torch.Tensor) -> torch.Tensor:
        """|M|: measured REAL entries per sample, (B,) float (complex entries count twice)."""
        ones = torch.ones(y.shape, dtype=real_dtype_of(y.dtype), device=y.device)
        count = (op.keep_measured(ones) != 0).flatten(1).sum(dim=1).to(ones.dtype)
        return count * (2.0 if y.is_complex() else 1.0)

    def misfit(self, op, x_image: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """r = P_M(A x − y) in y's layout, autocast off (physics in float32/complex64)."""
        with torch.autocast(device_type=y.device.type, enabled=False):
            return op.keep_measured(op.A(promote(x_image)) - promote(y))

    def residual(self, op, d_image: torch.Tensor, y: torch.Tensor, count: torch.Tensor | None = None
                 ) -> torch.Tensor:
        """‖W·P_M(A d − y)‖² / |M| per sample, (B,), on the ORIGINAL operator's measured entries
        (count: |M| when the caller has it, `measured_count` otherwise)."""
        with torch.autocast(device_type=y.device.type, enabled=False):
            r = self.misfit(op, d_image, y)
            count = self.measured_count(op, promote(y)) if count is None else count
            return squared_norm(self.weight(op, r)) / count.clamp_min(1.0)

    def consistency(self, op, x_image: torch.Tensor, y: torch.Tensor, count: torch.Tensor | None = None
                    ) -> torch.Tensor:
        """‖P_M(A x − y)‖² / |M| per sample, (B,), unweighted, of a CLEAN image x (every kind applies A):
        the data term of the generator prior (count as in `residual`)."""
        count = self.measured_count(op, promote(y)) if count is None else count
        return squared_norm(self.misfit(op, x_image, y)) / count.clamp_min(1.0)

    def output_misfit(self, op, x0: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """r of a teacher's x0-prediction (network channels): P_M(A·x0 − y) here; data kind x0 − y."""
        return self.misfit(op, self.to_image(x0), y)

    def generator_input(self, op_hat, z_image: torch.Tensor, batch: Mapping[str, torch.Tensor]):
        """(z_in, cond): the scaled noise σ_init·z (image layout) in the teacher's input format,
        R̂·Â z with Â's channels (a fresh further operator at the training density)."""
        return self.project(op_hat, z_image), self.cond(op_hat, batch)


class Measurement:
    """One batch under one family: the operator A (built once), the measurement y and the per-sample
    parts (index, masks, centers, coil maps, σ_n). Every consumer of a batch takes this object.

        m = family.measure(batch)
        m.A(x), m.A_adjoint(y), m.R(y), m.keep_measured(y)      the operator
        m_hat = m.further(seed)                                 Â, fixed per sample index
        m_hat.network_input(), m_hat.project(x), m_hat.cond()   the network's view of Â
        m.residual(d)                                           ‖W·P_M(A d − y)‖²/|M| on the ORIGINAL rows
    """

    def __init__(self, family: Family, op: LinearOperator, batch: Mapping[str, torch.Tensor]):
        self.family, self.op, self.batch = family, op, batch
        self._count: torch.Tensor | None = None   # |M|, see `measured_count`

    # -- what the batch holds -----------------------------------------------------------------------------
    @property
    def y(self) -> torch.Tensor:
        return self.batch["y"]

    @property
    def index(self) -> torch.Tensor:
        return self.batch["index"]

    @property
    def sigma_n(self) -> torch.Tensor | None:
        return self.batch.get("sigma_n")

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def with_y(self, y: torch.Tensor) -> "Measurement":
        """The same operator and per-sample parts with another measurement (a synthetic one)."""
        return Measurement(self.family, self.op, dict(self.batch, y=y))

    # -- the operator -----------------------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the maths' name)
        return self.op.A(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.op.A_adjoint(y)

    def R(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return self.op.R(y)

    def keep_measured(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.keep_measured(y)

    def further(self, seed: int = 0, generator: torch.Generator | None = None,
                index: torch.Tensor | None = None) -> "Measurement":
        """Â of every sample (the same batch with the further operator): keyed by (seed, index), index
        default batch["index"]; from `generator` when given. The data kind returns itself."""
        batch = self.batch if index is None else dict(self.batch, index=index)
        return Measurement(self.family, self.family.further(self.op, batch, seed, generator), self.batch)

    # -- the network's view -------------------------------------------------------------------------------
    def to_image(self, t: torch.Tensor) -> torch.Tensor:
        return self.family.to_image(t)

    def noise_shape(self) -> tuple[int, ...]:
        return self.family.noise_shape(self.batch)

    def generator_shape(self) -> tuple[int, ...]:
        return self.family.generator_shape(self.batch)

    def network_input(self) -> torch.Tensor:
        """R̂(P_M̂ y) in network channels: the zero-filled / FBP / masked image (data kind: y itself)."""
        return self.family.measured_input(self.op, self.y)

    def project(self, x_image: torch.Tensor) -> torch.Tensor:
        """P x = R̂·Â x of an image (operator layout) in network channels (data kind: A x)."""
        return self.family.project(self.op, x_image)

    def reproject(self, f: torch.Tensor) -> torch.Tensor:
        """P f of a tensor in network channels (a teacher's output, noise); the data kind: f itself."""
        return self.family.reproject(self.op, f)

    def identifiable(self, f: torch.Tensor) -> torch.Tensor:
        """f where the family's operators measure anything (see `Family.identifiable`)."""
        return self.family.identifiable(f)

    def cond(self) -> torch.Tensor | None:
        return self.family.cond(self.op, self.batch)

    def generator_input(self, z_image: torch.Tensor):
        """(z_in, cond) of the generator's scaled input noise (see `Family.generator_input`)."""
        return self.family.generator_input(self.op, z_image, self.batch)

    # -- data consistency ------------------------------------------------------------------------------
    def misfit(self, x_image: torch.Tensor) -> torch.Tensor:
        """P_M(A x − y), y's layout."""
        return self.family.misfit(self.op, x_image, self.y)

    def output_misfit(self, x0: torch.Tensor) -> torch.Tensor:
        """The misfit of a teacher's x0-prediction (network channels), in the space the teacher models."""
        return self.family.output_misfit(self.op, x0, self.y)

    def measured_count(self) -> torch.Tensor:
        """|M| per sample (B,), counted once per Measurement (its operator and y are fixed)."""
        if self._count is None:
            self._count = self.family.measured_count(self.op, promote(self.y))
        return self._count

    def residual(self, d_image: torch.Tensor) -> torch.Tensor:
        """‖W·P_M(A d − y)‖² / |M| per sample (B,) (data kind: the mean ‖d − y‖²)."""
        return self.family.residual(self.op, d_image, self.y, self.measured_count())

    def consistency(self, x_image: torch.Tensor) -> torch.Tensor:
        """‖P_M(A x − y)‖² / |M| per sample (B,) of a clean image x (the generator prior's data term)."""
        return self.family.consistency(self.op, x_image, self.y, self.measured_count())

    def default_zeta(self) -> torch.Tensor:
        return self.family.default_zeta(self.op, self.y)

    def measured_power(self) -> torch.Tensor:
        """The batch's mean power per measured frequency, (F,) (`Family.measured_power`; 0 where unmeasured)."""
        return self.family.measured_power(self.op, promote(self.y))
