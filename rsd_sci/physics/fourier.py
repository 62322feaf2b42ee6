"""Centred, orthonormal 2-D Fourier transform over the last two dimensions.

The convention is fastMRI's `fft2c`/`ifft2c` and sigpy's `fft(x, axes=(-2, -1))`:

    fft2c(x)  = fftshift(fft2(ifftshift(x), norm="ortho"))
    ifft2c(y) = fftshift(ifft2(ifftshift(y), norm="ortho"))

so that the k-space centre (DC) sits at index (H // 2, W // 2) and ||fft2c(x)|| = ||x||.

Shift-free form for even sizes. With a = N / 2 the centred DFT of length N is

    Y[k] = N^{-1/2} Σ_n x[n] exp(-2πi (n - a)(k - a) / N)
         = (-1)^{N/2} · (-1)^k · DFT((-1)^n x[n])[k],

because exp(iπn) = (-1)^n and exp(-2πi a² / N) = exp(-iπ N / 2) = (-1)^{N/2}. In 2-D, with the
checkerboard c[i, j] = (-1)^{i + j} and the global sign s = (-1)^{(H + W) / 2}:

    fft2c(x)  = s · c ⊙ fft2(c ⊙ x)
    ifft2c(y) = s · c ⊙ ifft2(c ⊙ y)        (the inverse has exp(+iπ N/2) = (-1)^{N/2} too)

Two real ±1 multiplications replace four roll copies. For odd sizes the shifts are not half-periods
and the transform falls back to explicit shifts. The checkerboards are cached per (H, W, dtype, device).

Example:
    >>> import torch
    >>> from rsd_sci.physics.fourier import fft2c, ifft2c
    >>> x = torch.randn(2, 1, 8, 8, dtype=torch.complex64)
    >>> bool(torch.allclose(ifft2c(fft2c(x)), x, atol=1e-6))
    True
"""

from __future__ import annotations

import functools

import torch

from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.precision import as_complex, real_dtype_of

_DIMS = (-2, -1)


def is_even(height: int, width: int) -> bool:
    """Whether the shift-free (checkerboard) form applies: both sizes even."""
    return height % 2 == 0 and width % 2 == 0


@functools.lru_cache(maxsize=64)
def checkerboard(height: int, width: int, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """c[i, j] = (-1)^(i + j), real (H, W). Cached; treat it as read-only."""
    i = torch.arange(height, device=device).view(-1, 1)
    j = torch.arange(width, device=device).view(1, -1)
    return (1 - 2 * ((i + j) % 2)).to(dtype)


@functools.lru_cache(maxsize=64)
def signed_checkerboard(height: int, width: int, dtype: torch.dtype = torch.float32,
                        device: torch.device | str = "cpu") -> torch.Tensor:
    """s · c with s = (-1)^((H + W) / 2): the post-FFT modulation of the even-size form, real (H, W)."""
    sign = -1.0 if ((height + width) // 2) % 2 else 1.0
    return sign * checkerboard(height, width, dtype, device)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D FFT over the last two dims: complex [..., H, W] -> complex [..., H, W].

    A real input is promoted to complex first.
    """
    x = as_complex(x)
    h, w = x.shape[-2:]
    if is_even(h, w):
        rdt = real_dtype_of(x.dtype)
        return torch.fft.fft2(x * checkerboard(h, w, rdt, x.device), norm="ortho").mul_(
            signed_checkerboard(h, w, rdt, x.device))
    shifted = torch.fft.ifftshift(x, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fft2(shifted, norm="ortho"), dim=_DIMS)


def ifft2c(y: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D inverse FFT over the last two dims (the adjoint and inverse of fft2c)."""
    y = as_complex(y)
    h, w = y.shape[-2:]
    if is_even(h, w):
        rdt = real_dtype_of(y.dtype)
        return torch.fft.ifft2(y * checkerboard(h, w, rdt, y.device), norm="ortho").mul_(
            signed_checkerboard(h, w, rdt, y.device))
    shifted = torch.fft.ifftshift(y, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifft2(shifted, norm="ortho"), dim=_DIMS)


class CenteredFFT(LinearOperator):
    """A = fft2c as an operator on complex [..., H, W]; unitary, so A^H = A^{-1} = ifft2c and ||A|| = 1."""

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return fft2c(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        return ifft2c(y)

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        return as_complex(x)
