"""Parallel-beam CT: Radon transform with an exact adjoint, view masks and filtered back-projection.

Forward model A = P_M · T: T is the parallel-beam projector of `rsd_sci.physics.radon_matrix` (the
geometry of `skimage.transform.radon(x, np.linspace(0, 180, n_angles, endpoint=False), circle=True)`:
N detectors, rotation centre N // 2, a sum over unit pixels; pixel-driven linear interpolation, about
1 % relative L2 from skimage on a phantom), and P_M zeroes the views that were not measured (like
zero-filled k-space): A(x)[b, :, k, :] = m[b, k] · (T x)[b, :, k, :].

    image x     real (B, C, N, N)          (C = 1 for CT; channels are treated as extra batch)
    sinogram y  real (B, C, n_angles, N)   views × detectors (skimage returns detectors × views)
    view mask   (n_angles,) shared or (B, n_angles) per sample, bool or float

A^T y = T^T (m ⊙ y) exactly (both are sparse gathers). The fixed reconstruction is FBP,

    R(y) = fbp(y) = π / (2·n_sampled) · T^T (m ⊙ h ∗ y),

with h the Kak–Slaney discrete ramp (spatial-domain definition, applied by FFT along detectors with
zero padding to max(64, 2^⌈log2 2N⌉)); with every view sampled this is
`skimage.transform.iradon(y.T, theta, circle=True, filter_name="ramp")`, and with a view mask it is
iradon on the sampled views alone (its gain does not grow with the number of views). Everything is
differentiable; physics runs in float32 (float64 when given float64) even under autocast.
Fan-beam geometry is not provided.

Example:
    >>> import torch
    >>> op = ParallelBeamCT(32, 60, view_mask=torch.from_numpy(view_mask(60, 20)))
    >>> y = op.A(torch.ones(2, 1, 32, 32))
    >>> tuple(y.shape), int((y.abs().sum(-1) > 0).sum())
    ((2, 1, 60, 32), 40)
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.precision import promote, real_dtype_of
from rsd_sci.physics.radon_matrix import SparsePair, system_matrices

FILTERS = ("ramp", "shepp-logan", "cosine", "hamming", "hann")


def _padded_length(n_detectors: int) -> int:
    return max(64, int(2 ** math.ceil(math.log2(2 * n_detectors))))


@functools.lru_cache(maxsize=32)
def _frequency_response(padded: int, name: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Half spectrum (padded // 2 + 1,) of the filter: 2·Re FFT(h) with the Kak–Slaney ramp

        h[0] = 1/4,  h[k] = −1 / (π k)² for odd k,  h[k] = 0 for even k ≠ 0   (k circular, |k| ≤ P/2),

    times an optional apodisation window (Shepp–Logan sinc, cosine, Hamming, Hann) over frequency,
    symmetrised (the Hamming and Hann windows are off by one sample; iradon's real part does the same).
    """
    k = np.arange(padded)
    lag = np.minimum(k, padded - k)
    h = np.where(lag % 2 == 1, -1.0 / (np.pi * np.maximum(lag, 1)) ** 2, 0.0)
    h[0] = 0.25
    response = 2.0 * np.real(np.fft.fft(h))
    omega = np.pi * np.fft.fftfreq(padded)
    if name == "shepp-logan":
        response[1:] *= np.sin(omega[1:]) / omega[1:]
    elif name == "cosine":
        response *= np.fft.fftshift(np.sin(np.linspace(0.0, np.pi, padded, endpoint=False)))
    elif name == "hamming":
        response *= np.fft.fftshift(np.hamming(padded))
    elif name == "hann":
        response *= np.fft.fftshift(np.hanning(padded))
    response = 0.5 * (response + np.roll(response[::-1], 1))  # H[k] ← (H[k] + H[−k])/2: a real filter
    return torch.as_tensor(response[: padded // 2 + 1], dtype=dtype, device=device)


def ramp_filter(y: torch.Tensor, filter: str = "ramp") -> torch.Tensor:  # noqa: A002 (skimage's name)
    """Filter every projection along the detector (last) axis: (h ∗ y)[d] = Σ_d' 2h(d − d') y[d'].

    Zero padding makes the convolution linear, not circular. Real (..., N) in, real (..., N) out;
    the filter's gain rises from ≈ 0 at DC to 1 at the detector Nyquist frequency. Used by FBP and as
    the weight W of the CT measurement-domain loss ‖W(A(D) − y)‖².
    """
    if filter not in FILTERS:
        raise ValueError(f"unknown filter {filter!r} (expected one of {', '.join(FILTERS)})")
    with torch.autocast(device_type=y.device.type, enabled=False):
        y = y.to(real_dtype_of(y.dtype))
        n = y.shape[-1]
        padded = _padded_length(n)
        response = _frequency_response(padded, filter, y.dtype, y.device)
        spectrum = torch.fft.rfft(y, n=padded, dim=-1) * response
        return torch.fft.irfft(spectrum, n=padded, dim=-1)[..., :n]


def field_of_view(image_size: int) -> np.ndarray:
    """The scanned disc, bool (N, N): the pixels the projector sees and FBP reconstructs (skimage's
    `circle=True`: centre N // 2, radius N // 2); nothing outside it is measured.

    Example:
        >>> field_of_view(4).astype(int)
        array([[0, 0, 1, 0],
               [0, 1, 1, 1],
               [1, 1, 1, 1],
               [0, 1, 1, 1]])
    """
    radius = image_size // 2
    rows, cols = np.mgrid[:image_size, :image_size] - radius
    return rows ** 2 + cols ** 2 <= radius ** 2


def view_mask(n_angles: int, n_views: int, kind: str = "sparse", offset: int = 0) -> np.ndarray:
    """Boolean (n_angles,) mask of the measured views.

    "sparse": n_views equispaced views, view ⌊k·n_angles / n_views⌋ + offset (mod n_angles);
    "limited": a contiguous arc of n_views views starting at `offset` (mod n_angles).
    """
    if not 1 <= n_views <= n_angles:
        raise ValueError(f"n_views must be in [1, {n_angles}], got {n_views}")
    if kind == "sparse":
        index = (np.arange(n_views) * n_angles) // n_views
    elif kind == "limited":
        index = np.arange(n_views)
    else:
        raise ValueError(f"unknown view mask kind {kind!r} (expected 'sparse' or 'limited')")
    mask = np.zeros(n_angles, dtype=bool)
    mask[(index + offset) % n_angles] = True
    return mask


def default_view_drop(n_angles: int, n_views: int) -> int:
    """Views to drop for the Ambient further mask by the "R + 1" rule (docs/method.md, "Forward operators").

    R = n_angles / n_views; keep round(n_views · R / (R + 1)) views (at least one), drop the rest.
    E.g. 60 of 180 views (R = 3): keep 45, drop 15. Every view measured: drop none (Â = A, plain
    diffusion on clean images: the clean control, as `further_drop_count`).
    """
    if not 1 <= n_views <= n_angles:
        raise ValueError(f"n_views must be in [1, {n_angles}], got {n_views}")
    if n_views == n_angles:
        return 0
    accel = n_angles / n_views
    keep = max(1, round(n_views * accel / (accel + 1)))
    return n_views - keep


def further_view_mask(mask: torch.Tensor, drop: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """M̂ ⊂ M: drop `drop` sampled views per row, uniformly at random without replacement.

    mask: (B, n_angles) or (n_angles,), bool or 0/1 float; returns the same shape and dtype. Every row
    must keep at least one view (ValueError otherwise). Draws come from `generator` (on mask's device).
    """
    if drop < 0:
        raise ValueError(f"drop must be ≥ 0, got {drop}")
    squeeze = mask.dim() == 1
    rows = mask[None] if squeeze else mask
    sampled = rows != 0
    fewest = int(sampled.sum(dim=-1).min()) if rows.numel() else 0
    if drop >= fewest:
        raise ValueError(f"cannot drop {drop} views from a row with only {fewest} sampled views")
    out = rows.clone()
    if drop > 0:
        scores = torch.rand(rows.shape, generator=generator, device=rows.device)
        scores = scores.masked_fill(~sampled, 2.0)  # unsampled views are never chosen
        chosen = scores.topk(drop, dim=-1, largest=False).indices
        out.scatter_(-1, chosen, torch.zeros_like(chosen, dtype=out.dtype))
    return out[0] if squeeze else out


class ParallelBeamCT(LinearOperator):
    """A = P_M · T, parallel-beam Radon transform with optional view mask (see the module docstring).

    Args:
        image_size: N, the image is N×N and the detector has N bins.
        n_angles: views over [0°, 180°), θ_k = k·180°/n_angles.
        view_mask: None (all views), (n_angles,) shared or (B, n_angles) per sample; bool or float.

    The system matrices are looked up in a cache keyed by (N, n_angles, dtype, device) on each call, so
    building an operator per batch is cheap and `.to(device)` needs to move only the view mask.
    """

    def __init__(self, image_size: int, n_angles: int = 180, view_mask: torch.Tensor | None = None):
        super().__init__()
        if image_size < 2 or n_angles < 1:
            raise ValueError(f"need image_size ≥ 2 and n_angles ≥ 1, got {image_size}, {n_angles}")
        self.image_size = int(image_size)
        self.n_angles = int(n_angles)
        if view_mask is not None:
            view_mask = torch.as_tensor(view_mask)
            if view_mask.dim() not in (1, 2) or view_mask.shape[-1] != self.n_angles:
                raise ValueError(f"view_mask must be (n_angles,) or (B, n_angles) with n_angles = "
                                 f"{self.n_angles}, got {tuple(view_mask.shape)}")
            view_mask = view_mask.reshape(-1, 1, self.n_angles, 1).float()
        self.register_buffer("views", view_mask)  # (1 or B, 1, n_angles, 1) float, or None

    # ---- helpers -------------------------------------------------------------------------------
    def _matrices(self, dtype: torch.dtype, device: torch.device):
        return system_matrices(self.image_size, self.n_angles, dtype, device)

    def _check_batch(self, batch: int) -> None:
        if self.views is not None and self.views.shape[0] not in (1, batch):
            raise ValueError(f"operator has {self.views.shape[0]} per-sample view masks, input batch {batch}")

    def _gather(self, x: torch.Tensor, rows_in: int, rows_out: tuple[int, int], transpose: bool) -> torch.Tensor:
        """(B, C, *in) real -> (B, C, *rows_out) through T (or T^T), batch as dense columns."""
        matrix, matrix_t = self._matrices(x.dtype, x.device)
        if transpose:
            matrix, matrix_t = matrix_t, matrix
        lead = x.shape[:-2]
        columns = x.reshape(-1, rows_in).T
        out = SparsePair.apply(columns, matrix, matrix_t)
        return out.T.reshape(*lead, *rows_out)

    def _masked(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.views is None else y * self.views.to(device=y.device, dtype=real_dtype_of(y.dtype))

    def keep_measured(self, y: torch.Tensor) -> torch.Tensor:
        """Unmeasured views set to zero."""
        return self._masked(y)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        n = self.image_size
        return self._masked(self._gather(x, n * n, (self.n_angles, n), transpose=False))

    def _backproject(self, y: torch.Tensor) -> torch.Tensor:
        n = self.image_size
        return self._gather(self._masked(y), self.n_angles * n, (n, n), transpose=True)

    # ---- the operator ----------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Sinogram (B, C, n_angles, N) of images (B, C, N, N); unmeasured views are zero rows."""
        n = self.image_size
        if x.dim() < 3 or tuple(x.shape[-2:]) != (n, n):
            raise ValueError(f"CT image must be (B, C, {n}, {n}), got {tuple(x.shape)}")
        self._check_batch(x.shape[0])
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = promote(x)
            if x.is_complex():  # real and imaginary parts separately (T is real)
                return torch.complex(self._project(x.real), self._project(x.imag))
            return self._project(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Back-projection T^T (m ⊙ y): (B, C, n_angles, N) -> (B, C, N, N)."""
        self._check_sinogram(y)
        with torch.autocast(device_type=y.device.type, enabled=False):
            y = promote(y)
            if y.is_complex():
                return torch.complex(self._backproject(y.real), self._backproject(y.imag))
            return self._backproject(y)

    def _check_sinogram(self, y: torch.Tensor) -> None:
        if y.dim() < 3 or tuple(y.shape[-2:]) != (self.n_angles, self.image_size):
            raise ValueError(f"sinogram must be (B, C, {self.n_angles}, {self.image_size}), "
                             f"got {tuple(y.shape)}")
        self._check_batch(y.shape[0])

    def sampled_views(self) -> torch.Tensor:
        """Bool (1 or B, n_angles) of the measured views (all True without a mask): the input layout of
        `further_view_mask`."""
        if self.views is None:
            return torch.ones(1, self.n_angles, dtype=torch.bool)
        return self.views[:, 0, :, 0] != 0

    def n_sampled(self) -> torch.Tensor:
        """Number of measured views, (1 or B, 1, 1, 1) float (n_angles without a mask)."""
        if self.views is None:
            return torch.full((1, 1, 1, 1), float(self.n_angles))
        return self.views.sum(dim=-2, keepdim=True)

    def ramp_filter(self, y: torch.Tensor, filter: str = "ramp") -> torch.Tensor:  # noqa: A002
        """The detector-axis ramp filter (see module-level `ramp_filter`); same shape as y."""
        return ramp_filter(y, filter)

    def fbp(self, y: torch.Tensor, filter: str = "ramp") -> torch.Tensor:  # noqa: A002
        """Filtered back-projection π/(2·n_sampled) · T^T(m ⊙ h ∗ y): (B, C, n_angles, N) -> (B, C, N, N).

        Matches skimage's iradon(circle=True) on the sampled views; zero outside the circle.
        """
        self._check_sinogram(y)
        filtered = ramp_filter(y, filter)
        scale = math.pi / (2.0 * self.n_sampled().to(filtered.device, filtered.dtype).clamp_min(1.0))
        return self.A_adjoint(filtered) * scale

    def R(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """The fixed linear reconstruction for CT: ramp-filtered back-projection."""
        return self.fbp(y)

    def further(self, generators: list[torch.Generator]) -> "ParallelBeamCT":
        """Â: sample i's views thinned by the R + 1 rule (`default_view_drop`) by generators[i]."""
        views = self.sampled_views().expand(len(generators), -1).cpu()
        rows = [further_view_mask(views[i:i + 1], default_view_drop(self.n_angles, int(views[i].sum())), g)
                for i, g in enumerate(generators)]
        return self.with_view_mask(torch.cat(rows))

    def with_view_mask(self, mask: torch.Tensor | np.ndarray | None) -> "ParallelBeamCT":
        """The same geometry with another view mask (shares the cached system matrices)."""
        mask = None if mask is None else torch.as_tensor(mask)
        if mask is not None and self.views is not None:
            mask = mask.to(self.views.device)
        return ParallelBeamCT(self.image_size, self.n_angles, view_mask=mask)

    def extra_repr(self) -> str:
        views = "all" if self.views is None else f"mask {tuple(self.views.shape[:1])}"
        return f"image_size={self.image_size}, n_angles={self.n_angles}, views={views}"
