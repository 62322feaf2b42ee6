"""The precision physics runs in: float32/complex64, or float64/complex128 when given float64.

Under bf16 autocast the network runs in bf16, but torch.fft has no bf16 and sparse projections lose
too much, so every operator promotes its input with `promote` inside `torch.autocast(enabled=False)`.

    >>> import torch
    >>> promote(torch.ones(2, dtype=torch.bfloat16)).dtype, as_complex(torch.ones(2, dtype=torch.float64)).dtype
    (torch.float32, torch.complex128)
"""

from __future__ import annotations

import torch

_DOUBLE = (torch.float64, torch.complex128)


def real_dtype_of(dtype: torch.dtype) -> torch.dtype:
    """float64 for float64/complex128, float32 otherwise."""
    return torch.float64 if dtype in _DOUBLE else torch.float32


def complex_dtype_of(dtype: torch.dtype) -> torch.dtype:
    """complex128 for float64/complex128, complex64 otherwise (bf16/half are promoted)."""
    return torch.complex128 if dtype in _DOUBLE else torch.complex64


def promote(t: torch.Tensor) -> torch.Tensor:
    """t in the physics precision, keeping real tensors real and complex ones complex."""
    target = complex_dtype_of(t.dtype) if t.is_complex() else real_dtype_of(t.dtype)
    return t if t.dtype == target else t.to(target)


def as_complex(x: torch.Tensor) -> torch.Tensor:
    """x as complex64/complex128; a real tensor gets a zero imaginary part."""
    target = complex_dtype_of(x.dtype)
    return x if x.dtype == target else x.to(target)
