"""How measurements meet the diffusion network: one small adapter per operator family.

The teacher's loss family (`rsd_sci.diffusion.losses`) is written once, for every modality; all that
differs between families lives here, in a `NetworkSpace` chosen once from the operator spec by
`network_space(spec)` (the only place a family is named). Two kinds (METHOD.md, Phase 1):

    "data"     the teacher models the corrupted images y themselves (noise, blur, down-sampling:
               members 1 and 2). Network image = y, (B, 1, h, w); no conditioning.
    "ambient"  the teacher sees a further-thinned measurement (pixel masks, MRI, CT: members 3 and 4).

For the ambient kinds, with A = P_M·T the operator of the sample and Â = P_M̂·T the further operator
(M̂ ⊂ M, drawn once per training sample by `further`), the network image of a clean image x is

    project(Â, x)        = R̂·Â x                      R̂ a fixed linear reconstruction of Â
    measured_input(Â, y) = R̂(P_M̂ y)                   computable from the measurement alone
    so  R̂·Â(x + σ n)     = measured_input(Â, y) + σ·project(Â, n)        when y = A x (+ noise on M),

and the loss is measured on the ORIGINAL entries M:

    residual(A, d, y) = ‖W·P_M(A d − y)‖² / |M|        (B,)

with |M| the number of measured REAL entries per sample (a complex k-space entry counts twice, so that
the measurement-domain loss of a full single-coil mask equals the mean over the two real network
channels of (D − x)², by orthonormality of the centred FFT).

Per family:

    family            channels  cond (channels)              R̂                        W
    image: noise/     1         None (0)                     — (network image = y)     — (mean over y)
      blur/downsample
    image: inpaint    1         M̂ (1)                        M̂ ⊙ ·                    I
    mri               2         [line pattern of M̂, 1] (2)   Σ_c conj(Ŝ_c) F⁻¹(M̂ ⊙ ·), I
                                                             Ŝ = S / RSS(S) (unit RSS)
    ct                1         [1] (1)                      FBP of the views in M̂     ramp filter

MRI: complex images (B, 1, H, W) are two real channels [Re, Im] (`rsd_sci.physics.layout`); image noise
is complex with σ per real part, Â n = M̂ ⊙ F(S_c n) with the sample's own maps S, and R̂ is the adjoint
with the maps normalised to unit RSS, R̂ k = Â^H k / RSS(S) (0 where RSS(S) ≤ 1e-6). The stored maps
(ESPIRiT with crop 0, or simulated birdcage maps) are unit RSS already, so R̂ = Â^H for our data;
dividing by the RSS keeps the input's gain right for maps that are not. Single-coil: S = 1, R̂ = Â^H.
The line-pattern channel is M̂ broadcast over the rows (1 on sampled columns); a 2-D mask is its own image.

Further masks are fixed per training sample (the published "masks fixed per training image"): each
sample's draw comes from its own CPU generator seeded from (seed, global index) (`further_generator`),
never from the step or the rank, so every step and any number of processes see the same M̂, on any
device. Rules: MRI keeps the calibration region and thins the other sampled lines (or points) to
acceleration R + 1 (`further_drop_count`); CT drops `default_view_drop(n_angles, views)` views;
pixels M̂ = M ⊙ Bernoulli(1 − δ) with δ = spec["delta"] (default 0.1).

Example:
    >>> import torch
    >>> space = network_space({"family": "image", "shape": [4, 4], "corruption": "inpaint", "delta": 0.5})
    >>> (space.kind, space.channels, space.cond_channels)
    ('ambient', 1, 1)
"""

from __future__ import annotations

import abc
from typing import Mapping

import numpy as np
import torch

from rsd_sci.physics.layout import channels_to_complex, complex_to_channels
from rsd_sci.physics.precision import promote, real_dtype_of

FURTHER_MASK_STREAM = 0x4D48  # key stream of the further masks ("MH", M-hat): apart from other keyed draws
RSS_EPS = 1e-6                # coil-map RSS below this counts as outside the support (R̂ is 0 there)
DEFAULT_DELTA = 0.1           # pixel further-mask drop rate when the spec has none (METHOD.md: δ ≈ 0.1)


def further_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator for one training sample's further mask, keyed by (seed, global index) only.

    The 63-bit seed comes from numpy's SeedSequence([seed mod 2⁶⁴, index, FURTHER_MASK_STREAM]): stable
    across runs, platforms and process counts.
    """
    state = np.random.SeedSequence([int(seed) % 2**64, int(index), FURTHER_MASK_STREAM])
    return torch.Generator(device="cpu").manual_seed(int(state.generate_state(1, dtype=np.uint64)[0]) >> 1)


def _batch_size(batch: Mapping[str, torch.Tensor]) -> int:
    return int(batch["y"].shape[0])


def _squared_norm(t: torch.Tensor) -> torch.Tensor:
    """Σ over all but the batch dim of |t|² (complex: re² + im²), (B,)."""
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.square().flatten(1).sum(dim=1)


class NetworkSpace(abc.ABC):
    """Base of the adapters: layouts, the measured-domain residual and the per-family hooks.

    Attributes: kind ("data" | "ambient"), channels (network image channels), cond_channels, spec.
    Subclasses set the class attributes, implement further, project and measured_input, and override
    noise_shape, cond, to_image/to_channels and `weight` where their family needs it.
    """

    kind = "ambient"
    channels = 1
    cond_channels = 0

    def __init__(self, spec: Mapping):
        self.spec = dict(spec)

    # -- layouts -------------------------------------------------------------------------------------
    def to_image(self, t: torch.Tensor) -> torch.Tensor:
        """Network channels (B, channels, H, W) -> the operator's image layout (real: float32/64)."""
        return promote(t)

    def to_channels(self, x: torch.Tensor) -> torch.Tensor:
        """The operator's image layout -> network channels (B, channels, H, W)."""
        return x

    def noise_shape(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
        """Shape of a standard-normal draw in network channels, (B, channels, H, W)."""
        return tuple(batch["y"].shape)

    def image_noise(self, batch: Mapping[str, torch.Tensor],
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """N(0, I) in the operator's image layout (complex: N(0, 1) per real part) on the batch's device.

        Drawn on the generator's device (CPU when None) and moved; for keyed draws, draw real normals of
        `noise_shape(batch)` yourself and pass them through `to_image` (the losses accept either).
        """
        device = generator.device if generator is not None else torch.device("cpu")
        n = torch.randn(self.noise_shape(batch), generator=generator, device=device)
        return self.to_image(n.to(batch["y"].device))

    # -- the data-space image --------------------------------------------------------------------------
    def data_image(self, batch: Mapping[str, torch.Tensor], op) -> torch.Tensor:
        """The network-space version of the whole measurement, measured_input(op, y): y itself for kind
        "data", R(P_M y) (zero-filled / FBP / masked image) for the ambient kinds. (B, channels, h, w)."""
        return self.measured_input(op, batch["y"])

    # -- the measured-domain residual ----------------------------------------------------------------------
    def weight(self, op, r: torch.Tensor) -> torch.Tensor:
        """The residual weight W (identity here; the ramp filter for CT)."""
        return r

    def measured_count(self, op, y: torch.Tensor) -> torch.Tensor:
        """|M|: measured REAL entries per sample, (B,) float (complex entries count twice)."""
        ones = torch.ones(y.shape, dtype=real_dtype_of(y.dtype), device=y.device)
        count = (op.keep_measured(ones) != 0).flatten(1).sum(dim=1).to(ones.dtype)
        return count * (2.0 if y.is_complex() else 1.0)

    def residual(self, op, d_image: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """‖W·P_M(A d − y)‖² / |M| per sample, (B,), on the ORIGINAL operator's measured entries.

        d_image: the denoiser's output in the operator's image layout; y: the measurement. P_M is
        `op.keep_measured` (so noise stored in unmeasured entries, if any, is ignored).
        """
        with torch.autocast(device_type=y.device.type, enabled=False):
            y = promote(y)
            r = op.keep_measured(op.A(promote(d_image)) - y)
            return _squared_norm(self.weight(op, r)) / self.measured_count(op, y).clamp_min(1.0)

    # -- the generator's view (distillation, METHOD.md Phase 2) ------------------------------------------
    def generator_shape(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, ...]:
        """Shape of a clean image in network channels, (B, channels, H, W): the generator's output."""
        return self.noise_shape(batch)

    def generator_input(self, op_hat, z_image: torch.Tensor, batch: Mapping[str, torch.Tensor]):
        """(z_in, cond): the scaled noise σ_init·z (image layout) put into the teacher's input format,
        R̂·Â z with Â's channels (a fresh further operator at the training density)."""
        return self.project(op_hat, z_image), self.cond(op_hat, batch)

    def view(self, op_view, x_image: torch.Tensor) -> torch.Tensor:
        """u = P(x) = R̂·Â x: a clean image in the teacher's network space (B, channels, H, W)."""
        return self.project(op_view, x_image)

    def view_output(self, op_view, f: torch.Tensor) -> torch.Tensor:  # P(f) of a denoiser output
        return self.project(op_view, self.to_image(f))

    def view_noise_shape(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, ...]:  # ε's shape
        return self.noise_shape(batch)

    def view_noise(self, op_view, eps: torch.Tensor) -> torch.Tensor:  # x_t = view(x) + σ·view_noise(ε)
        return self.project(op_view, self.to_image(eps))

    # -- hooks ----------------------------------------------------------------------------------------------
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


class DataSpace(NetworkSpace):
    """Noise, blur, down-sampling: the teacher models the corrupted images y (B, 1, h, w) themselves.

    Nothing is thinned (further returns A), project(A, x) = A x (the corrupted image of x: the base's
    `view` of a generator's output), measured_input(A, y) = y, no conditioning, and the residual
    is the plain per-element mean ‖d − y‖² / numel(y).
    """

    kind = "data"   # one channel, no conditioning (the base's defaults)

    def further(self, op, batch, seed, generator=None):
        return op

    def project(self, op_hat, x_image):
        return promote(op_hat.A(x_image))

    def measured_input(self, op_hat, y):
        return promote(y)

    def residual(self, op, d_image, y):
        return (promote(d_image) - promote(y)).square().flatten(1).mean(dim=1)

    def generator_shape(self, batch):
        """y's shape with the clean size spec["shape"] as its trailing dims ((B, 1, H, W) for images):
        for down-sampling the generator runs the teacher's convolutional weights at full resolution."""
        y, shape = batch["y"], [int(n) for n in self.spec.get("shape", [])]
        return (*y.shape[:y.dim() - len(shape)], *shape) if shape else tuple(y.shape)

    def generator_input(self, op_hat, z_image, batch):
        return promote(z_image), None

    def view_output(self, op_view, f):  # P = I: the teacher's output already lives in its space
        return f

    def view_noise(self, op_view, eps):  # x_t = A(x) + σ ε with ε in the data space
        return eps


class PixelMaskSpace(NetworkSpace):
    """Inpainting (Ambient Diffusion, Daras et al.): A = M ⊙ ·, Â = M̂ ⊙ ·, M̂ = M ⊙ Bernoulli(1 − δ).

    Network image M̂ ⊙ (y + σ n) (y = M ⊙ (x + noise), so M̂ ⊙ y = M̂ ⊙ (x + noise)), cond M̂ (mask's
    shape, e.g. (B, 1, H, W); (B, D) for vector data), residual ‖M ⊙ (D − y)‖² / |M|.
    """

    kind = "ambient"
    channels = 1
    cond_channels = 1

    @property
    def delta(self) -> float:
        return float(self.spec.get("delta", DEFAULT_DELTA))

    def further(self, op, batch, seed, generator=None):
        from rsd_sci.physics.inpaint import PixelMask, further_pixel_mask

        b = _batch_size(batch)
        mask = op.mask.expand(b, *op.mask.shape[1:]).cpu()
        if generator is not None:
            return PixelMask(further_pixel_mask(mask, self.delta, generator).to(batch["y"].device))
        rows = [further_pixel_mask(mask[i:i + 1], self.delta, further_generator(seed, int(k)))
                for i, k in enumerate(batch["index"].tolist())]
        return PixelMask(torch.cat(rows).to(batch["y"].device))

    def cond(self, op_hat, batch):
        mask = op_hat.mask.to(device=batch["y"].device, dtype=torch.float32)
        return mask.expand(_batch_size(batch), *mask.shape[1:])

    def project(self, op_hat, x_image):
        return op_hat.A(x_image)

    def measured_input(self, op_hat, y):
        return op_hat.A(y)


class MRISpace(NetworkSpace):
    """Cartesian MRI (measurement-domain Ambient, Aali et al. 2024): Â = M̂ ⊙ F(S_c ·), R̂ = Â^H / RSS(S).

    Network image: 2 channels [Re, Im] of a complex (B, 1, H, W) image. Further masks: line masks
    (B, W) or 2-D masks (B, H, W) with batch["centers"] alike (the calibration region, never thinned).
    cond: [M̂ as an image (lines broadcast over rows), ones], (B, 2, H, W).
    """

    kind = "ambient"
    channels = 2
    cond_channels = 2

    def to_image(self, t):
        return channels_to_complex(t)

    def to_channels(self, x):
        return complex_to_channels(x)

    def noise_shape(self, batch):
        y = batch["y"]
        return (y.shape[0], 2, *y.shape[-2:])

    def further(self, op, batch, seed, generator=None):
        from rsd_sci.physics.masks import further_drop_count, further_line_mask_torch

        b = _batch_size(batch)
        rows_hw = tuple(op.mask.shape[-2:])  # (1, W) for line masks, (H, W) for 2-D masks
        sampled = (op.mask != 0).reshape(op.mask.shape[0], -1).expand(b, -1).cpu()
        if "centers" not in batch:
            raise ValueError("MRI further masks need batch['centers'] (the calibration region, never thinned)")
        centers = torch.as_tensor(batch["centers"]).bool().reshape(b, -1).cpu()
        if centers.shape != sampled.shape:
            raise ValueError(f"centers {tuple(batch['centers'].shape)} do not match the k-space mask "
                             f"{tuple(op.mask.shape)} (line masks need (B, W), 2-D masks (B, H, W))")
        rows = []
        for i, k in enumerate(batch["index"].tolist()):
            drop = further_drop_count(int(sampled[i].sum()), sampled.shape[1])
            rows.append(further_line_mask_torch(sampled[i:i + 1], centers[i:i + 1], drop,
                                                generator or further_generator(seed, int(k))))
        m_hat = torch.cat(rows).reshape(b, 1, *rows_hw).to(device=op.mask.device, dtype=torch.float32)
        return op.with_mask(m_hat)

    def cond(self, op_hat, batch):
        y = batch["y"]
        pattern = op_hat.mask.to(device=y.device, dtype=torch.float32).expand(y.shape[0], 1, *y.shape[-2:])
        return torch.cat([pattern, torch.ones_like(pattern)], dim=1)

    @staticmethod
    def _inverse_rss(op_hat) -> torch.Tensor | None:
        """1 / RSS(S) (B|1, 1, H, W), 0 outside the maps' support; None for single-coil (S = 1)."""
        maps = op_hat.smaps  # the folded maps differ from S by a ±1 checkerboard: the same RSS
        if maps is None:
            return None
        rss = torch.linalg.vector_norm(maps, dim=1, keepdim=True)
        return torch.where(rss > RSS_EPS, 1.0 / rss.clamp_min(RSS_EPS), torch.zeros_like(rss))

    def _reconstruct(self, op_hat, image: torch.Tensor) -> torch.Tensor:
        inverse = self._inverse_rss(op_hat)
        return complex_to_channels(image if inverse is None else image * inverse.to(image.device))

    def project(self, op_hat, x_image):
        return self._reconstruct(op_hat, op_hat.normal(x_image))

    def measured_input(self, op_hat, y):
        return self._reconstruct(op_hat, op_hat.A_adjoint(y))


class CTSpace(NetworkSpace):
    """Parallel-beam CT, views thinned like k-space lines: Â = P_M̂·T, R̂ = FBP of the views in M̂
    (its gain does not grow with the number of views); cond a channel of ones (every sample keeps the
    same number of views); residual weighted by the ramp filter W on the ORIGINAL views."""

    kind = "ambient"
    channels = 1
    cond_channels = 1

    def noise_shape(self, batch):
        n = int(self.spec["image_size"])
        return (_batch_size(batch), 1, n, n)

    def further(self, op, batch, seed, generator=None):
        from rsd_sci.physics.ct import default_view_drop, further_view_mask

        b = _batch_size(batch)
        views = op.sampled_views().expand(b, -1).cpu()
        rows = []
        for i, k in enumerate(batch["index"].tolist()):
            drop = default_view_drop(op.n_angles, int(views[i].sum()))
            rows.append(further_view_mask(views[i:i + 1], drop, generator or further_generator(seed, int(k))))
        return op.with_view_mask(torch.cat(rows)).to(batch["y"].device)

    def cond(self, op_hat, batch):
        y = batch["y"]
        n = int(self.spec["image_size"])
        return torch.ones(y.shape[0], 1, n, n, device=y.device)

    def weight(self, op, r):
        return op.ramp_filter(r)

    def project(self, op_hat, x_image):
        return op_hat.fbp(op_hat.A(x_image))

    def measured_input(self, op_hat, y):
        return op_hat.fbp(y)


def network_space(spec: Mapping) -> NetworkSpace:
    """The adapter for an operator spec (`rsd_sci.physics.factory`): mri, ct, image/inpaint, or
    image/noise|blur|downsample (data space)."""
    family = spec.get("family")
    if family == "mri":
        return MRISpace(spec)
    if family == "ct":
        return CTSpace(spec)
    if family == "image":
        corruption = spec.get("corruption")
        if corruption == "inpaint":
            return PixelMaskSpace(spec)
        if corruption in ("noise", "blur", "downsample"):
            return DataSpace(spec)
        raise ValueError(f"unknown corruption {corruption!r} (expected noise, blur, inpaint or downsample)")
    raise ValueError(f"unknown operator family {family!r} (expected mri, ct or image)")
