"""Cartesian MRI forward model: single-coil Fourier sampling and multi-coil SENSE.

With F the centred orthonormal 2-D FFT (`rsd_sci.physics.fourier`), S_c the coil sensitivities and M a
real k-space mask (0/1, or soft weights):

    A(x)    = M ⊙ F(S_c · x)                      x complex (B, 1, H, W) -> y complex (B, C, H, W)
    A^H(y)  = Σ_c conj(S_c) · F^H(M ⊙ y_c)        y complex (B, C, H, W) -> x complex (B, 1, H, W)
    A^H A x = Σ_c conj(S_c) · F^H(M² ⊙ F(S_c · x))

Single-coil is C = 1 and S = 1. R(y) = A^H(y) (with unit-RSS maps this is the usual coil-combined
zero-filled image). With unit-RSS maps and M = 1, ||A|| = 1.

Speed: for even H and W the centred FFT is F = s·c ⊙ fft2(c ⊙ ·) with the checkerboard
c = (-1)^(i+j) and a sign s (see fourier.py). The pre-modulation is folded once into the maps
(S'_c = c ⊙ S_c, stored) and the post-modulation into the mask (M' = s·c ⊙ M, a small real (B, 1, H, W)
tensor built per call), so a SENSE forward is one complex product, one batched fft2 over all coils and
one real product, with no shift copies:

    A(x) = M' ⊙ fft2(S'_c · x),    A^H(y) = Σ_c conj(S'_c) · ifft2(M' ⊙ y_c)

On the CPU the batch is processed in chunks of at most CPU_CHUNK_BYTES per coil-sized intermediate:
glibc hands larger blocks out as fresh pages whose page faults cost more than the FFTs themselves
(measured on 2 cores, 15 coils, 320×320, batch 8: about 2× faster than the whole batch at once), while
small blocks are reused. On CUDA the whole batch goes at once.

Physics runs in complex64 (complex128 for float64/complex128 inputs) with autocast disabled, so bf16
autocast regions do not change the result; real inputs are promoted to complex.

Example:
    >>> import torch
    >>> from rsd_sci.physics.mri import MRIOperator
    >>> mask = torch.zeros(16); mask[::2] = 1
    >>> op = MRIOperator(mask)                      # single-coil, the same lines for every sample
    >>> op.A(torch.randn(2, 1, 16, 16, dtype=torch.complex64)).shape
    torch.Size([2, 1, 16, 16])
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.fourier import checkerboard, fft2c, ifft2c, is_even, signed_checkerboard
from rsd_sci.physics.precision import as_complex, complex_dtype_of, real_dtype_of


CPU_CHUNK_BYTES = 16 * 2**20  # largest coil-sized intermediate per chunk on the CPU (see MRIOperator._chunks)


def _no_autocast(device: torch.device):
    """A context that turns autocast off on `device` (physics stays in float32/complex64)."""
    if device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, enabled=False)
    return contextlib.nullcontext()


def _mask_4d(mask: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(W,) -> (1,1,1,W); (H, W) -> (1,1,H,W); (B, H, W) -> (B,1,H,W); 4-D kept. Real float."""
    m = torch.as_tensor(mask)
    if m.is_complex():
        raise ValueError("the k-space mask must be real (0/1 or weights), got a complex tensor")
    if not m.is_floating_point():
        m = m.to(torch.float32)
    if m.dim() == 1:
        return m.view(1, 1, 1, -1)
    if m.dim() == 2:
        return m[None, None]
    if m.dim() == 3:
        return m[:, None]
    if m.dim() == 4:
        return m
    raise ValueError(f"mask must have 1 to 4 dims (W,), (H, W), (B, H, W) or (B, 1|C, H|1, W); got {tuple(m.shape)}")


def _maps_4d(maps: torch.Tensor | np.ndarray) -> torch.Tensor:
    """(C, H, W) -> (1, C, H, W); (B, C, H, W) kept; complex."""
    s = torch.as_tensor(maps)
    if s.dim() == 3:
        s = s[None]
    if s.dim() != 4:
        raise ValueError(f"coil maps must be (C, H, W) or (B, C, H, W), got {tuple(s.shape)}")
    return as_complex(s)


class MRIOperator(LinearOperator):
    """Masked (multi-coil) Cartesian MRI: A(x) = M ⊙ F(S_c x).

    Args:
        mask: real k-space mask broadcastable to (B, C, H, W): (W,) or (H, W) shared by the batch,
            (B, H, W), or 4-D such as (B, 1, 1, W) for per-sample line masks and (B, 1, H, W) for 2-D
            masks. bool is converted to float. Stored as the 4-D buffer `mask`.
        maps: complex coil sensitivities (B, C, H, W) or (C, H, W) (shared by the batch), or None for
            single-coil data (C = 1, S = 1). Normalise them to unit RSS for ||A|| <= 1 (`normalize_maps`).
    """

    def __init__(self, mask: torch.Tensor, maps: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("mask", _mask_4d(mask))
        self._folded = False
        folded_maps = None
        if maps is not None:
            s = _maps_4d(maps)
            self._check_shapes(self.mask, s)
            self._folded = is_even(*s.shape[-2:])
            if self._folded:
                s = s * checkerboard(*s.shape[-2:], real_dtype_of(s.dtype), s.device)
            folded_maps = torch.view_as_real(s.contiguous())
        # stored as real (B, C, H, W, 2) so that Module.to(dtype) keeps the imaginary part
        self.register_buffer("folded_maps", folded_maps)

    @property
    def smaps(self) -> torch.Tensor | None:
        """The stored maps as complex (B|1, C, H, W): S'_c = c ⊙ S_c for even sizes, else S_c."""
        if self.folded_maps is None:
            return None
        f = self.folded_maps
        return torch.view_as_complex(f if f.dtype in (torch.float32, torch.float64) else f.float())

    @staticmethod
    def _check_shapes(mask: torch.Tensor, maps: torch.Tensor) -> None:
        for name, m_size, s_size in (("height", mask.shape[-2], maps.shape[-2]),
                                     ("width", mask.shape[-1], maps.shape[-1])):
            if m_size not in (1, s_size):
                raise ValueError(f"mask {name} {m_size} does not match the coil maps' {name} {s_size}")
        if mask.shape[0] not in (1, maps.shape[0]) and maps.shape[0] != 1:
            raise ValueError(f"mask batch {mask.shape[0]} does not match the coil maps' batch {maps.shape[0]}")

    @property
    def maps(self) -> torch.Tensor | None:
        """The coil maps S (B|1, C, H, W) as given (un-folded), or None for single-coil."""
        if self.smaps is None or not self._folded:
            return self.smaps
        h, w = self.smaps.shape[-2:]
        return self.smaps * checkerboard(h, w, real_dtype_of(self.smaps.dtype), self.smaps.device)

    @property
    def n_coils(self) -> int:
        return 1 if self.smaps is None else int(self.smaps.shape[1])

    def with_mask(self, mask: torch.Tensor) -> "MRIOperator":
        """The same coil maps with another mask (e.g. the Ambient further mask M̂ ⊂ M); maps are shared."""
        op = MRIOperator(mask)
        if self.folded_maps is not None:
            self._check_shapes(op.mask, self.smaps)
            op.folded_maps = self.folded_maps
            op._folded = self._folded
        return op.to(self.mask.device)

    def further(self, generators: list[torch.Generator], centers: torch.Tensor) -> "MRIOperator":
        """Â: sample i's sampled lines (or points of a 2-D mask) outside the calibration region thinned to
        acceleration R + 1 (`masks.further_drop_count`) by generators[i], the centre always kept.
        centers: (B, W) or (B, H, W) like the mask, the calibration region."""
        from rsd_sci.physics.masks import further_drop_count, further_line_mask_torch

        b = len(generators)
        rows_hw = tuple(self.mask.shape[-2:])  # (1, W) for line masks, (H, W) for 2-D masks
        sampled = (self.mask != 0).reshape(self.mask.shape[0], -1).expand(b, -1).cpu()
        centers = torch.as_tensor(centers).bool().reshape(b, -1).cpu()
        if centers.shape != sampled.shape:
            raise ValueError(f"centers {tuple(centers.shape)} do not match the k-space mask "
                             f"{tuple(self.mask.shape)} (line masks need (B, W), 2-D masks (B, H, W))")
        rows = [further_line_mask_torch(sampled[i:i + 1], centers[i:i + 1],
                                        further_drop_count(int(sampled[i].sum()), sampled.shape[1]), g)
                for i, g in enumerate(generators)]
        m_hat = torch.cat(rows).reshape(b, 1, *rows_hw).to(device=self.mask.device, dtype=torch.float32)
        return self.with_mask(m_hat)

    def keep_measured(self, y: torch.Tensor) -> torch.Tensor:
        """Unsampled k-space locations set to zero."""
        return y * self.mask.to(device=y.device, dtype=real_dtype_of(y.dtype))

    # -- helpers -------------------------------------------------------------------------------------
    def _prepare(self, t: torch.Tensor, channels: int) -> torch.Tensor:
        t = as_complex(t)
        if t.dim() != 4 or t.shape[1] != channels:
            raise ValueError(f"MRIOperator expects (B, {channels}, H, W) here, got {tuple(t.shape)}")
        return t

    def _batch(self, t: torch.Tensor) -> int:
        sizes = {t.shape[0], self.mask.shape[0]} | ({self.smaps.shape[0]} if self.smaps is not None else set())
        sizes.discard(1)
        if len(sizes) > 1:
            raise ValueError(f"batch sizes do not broadcast: input {t.shape[0]}, mask {self.mask.shape[0]}"
                             + ("" if self.smaps is None else f", maps {self.smaps.shape[0]}"))
        return sizes.pop() if sizes else 1

    def _chunks(self, t: torch.Tensor) -> list[slice]:
        """Batch slices whose coil-sized intermediates stay under CPU_CHUNK_BYTES (one slice off the CPU).

        On the CPU, glibc serves blocks above its mmap threshold (at most 32 MiB) with fresh pages, and
        faulting them in costs more than the arithmetic; smaller chunks reuse heap memory instead.
        """
        n = self._batch(t)
        per_sample = self.n_coils * t.shape[-2] * t.shape[-1] * t.element_size()
        step = n if t.device.type != "cpu" else max(1, CPU_CHUNK_BYTES // per_sample)
        return [slice(i, min(i + step, n)) for i in range(0, n, step)]

    @staticmethod
    def _take(t: torch.Tensor | None, sl: slice) -> torch.Tensor | None:
        return t if t is None or t.shape[0] == 1 else t[sl]

    def _operands(self, t: torch.Tensor):
        """(folded?, maps in t's precision or None, real k-space weight, checkerboard or None)."""
        h, w = t.shape[-2:]
        rdt = real_dtype_of(t.dtype)
        folded = is_even(h, w) and (self.smaps is None or self._folded)
        maps = None if self.smaps is None else self.smaps.to(dtype=complex_dtype_of(t.dtype), device=t.device)
        mask = self.mask.to(dtype=rdt, device=t.device)
        weight = mask * signed_checkerboard(h, w, rdt, t.device) if folded else mask
        board = checkerboard(h, w, rdt, t.device) if folded and maps is None else None
        return folded, maps, weight, board

    @staticmethod
    def _fft(coils: torch.Tensor, folded: bool) -> torch.Tensor:
        return torch.fft.fft2(coils, norm="ortho") if folded else fft2c(coils)

    @staticmethod
    def _ifft(k: torch.Tensor, folded: bool) -> torch.Tensor:
        return torch.fft.ifft2(k, norm="ortho") if folded else ifft2c(k)

    @staticmethod
    def _to_coils(x, maps, board):
        """S'_c x (maps, folded or not), c ⊙ x (single-coil, folded) or x."""
        return x * maps if maps is not None else (x * board if board is not None else x)

    @staticmethod
    def _combine(z, maps, board):
        """Σ_c conj(S_c) z_c keepdim, or c ⊙ z / z for single-coil (z is a fresh tensor: in place)."""
        if maps is not None:
            return z.mul_(maps.conj()).sum(dim=1, keepdim=True)
        return z.mul_(board) if board is not None else z

    @staticmethod
    def _weigh(k: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """k ⊙ weight, in place when the shapes allow (k is a fresh FFT output nobody else holds)."""
        if torch.broadcast_shapes(k.shape, weight.shape) == k.shape:
            return k.mul_(weight)
        return k * weight

    # -- the operator --------------------------------------------------------------------------------
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """x complex (B, 1, H, W) -> k-space complex (B, C, H, W)."""
        with _no_autocast(x.device):
            x = self._prepare(x, 1)
            folded, maps, weight, board = self._operands(x)
            chunks, tk = self._chunks(x), self._take

            def part(sl):
                return self._fft(self._to_coils(tk(x, sl), tk(maps, sl), board), folded)

            if len(chunks) == 1:
                return self._weigh(part(chunks[0]), tk(weight, chunks[0]))
            if torch.is_grad_enabled() and (x.requires_grad or (maps is not None and maps.requires_grad)):
                return torch.cat([self._weigh(part(sl), tk(weight, sl)) for sl in chunks])
            out = torch.empty((chunks[-1].stop, self.n_coils) + tuple(x.shape[-2:]), dtype=x.dtype,
                              device=x.device)
            for sl in chunks:  # write each chunk straight into the output (no concatenation copy)
                torch.mul(part(sl), tk(weight, sl), out=out[sl])
            return out

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """k-space complex (B, C, H, W) -> image complex (B, 1, H, W)."""
        with _no_autocast(y.device):
            y = self._prepare(y, self.n_coils)
            folded, maps, weight, board = self._operands(y)
            tk = self._take
            parts = [self._combine(self._ifft(tk(y, sl) * tk(weight, sl), folded), tk(maps, sl), board)
                     for sl in self._chunks(y)]
            return parts[0] if len(parts) == 1 else torch.cat(parts)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A^H A x = Σ_c conj(S_c) F^H(M² ⊙ F(S_c x)); (s·c)² = 1, so only M² acts in k-space."""
        with _no_autocast(x.device):
            x = self._prepare(x, 1)
            folded, maps, _, board = self._operands(x)
            m2 = self.mask.to(dtype=real_dtype_of(x.dtype), device=x.device).square()
            tk, parts = self._take, []
            for sl in self._chunks(x):
                k = self._weigh(self._fft(self._to_coils(tk(x, sl), tk(maps, sl), board), folded), tk(m2, sl))
                parts.append(self._combine(self._ifft(k, folded), tk(maps, sl), board))
            return parts[0] if len(parts) == 1 else torch.cat(parts)


def rss(x: torch.Tensor | np.ndarray, dim: int = 1, keepdim: bool = False):
    """Root-sum-of-squares over coils: sqrt(Σ_c |x_c|²), real. torch or numpy in, the same out."""
    if isinstance(x, np.ndarray):
        return np.sqrt(np.sum(np.abs(x) ** 2, axis=dim, keepdims=keepdim))
    return torch.linalg.vector_norm(x, dim=dim, keepdim=keepdim)


def normalize_maps(maps: torch.Tensor | np.ndarray, eps: float = 1e-6):
    """Unit-RSS coil maps: S_c / sqrt(Σ_c |S_c|²) where that RSS exceeds eps, zero elsewhere.

    maps: complex (..., C, H, W) (coils in dim -3), torch or numpy; returns the same type and shape.
    """
    norm = rss(maps, dim=-3, keepdim=True)
    if isinstance(maps, np.ndarray):
        inside = norm > eps
        return np.where(inside, maps / np.where(inside, norm, 1.0), 0).astype(maps.dtype, copy=False)
    inside = norm > eps
    return torch.where(inside, maps / torch.where(inside, norm, torch.ones_like(norm)), torch.zeros_like(maps))
