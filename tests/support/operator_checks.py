"""The one set of checks every linear operator passes (sigpy/deepinv style).

Each family registers `OperatorCase`s in its own `tests/support/cases_*.py`; `tests/physics/test_operator_checks.py`
collects them all into one list and runs every check over float64 and float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from rsd_sci.physics.base import LinearOperator


@dataclass
class OperatorCase:
    """One operator under test.

    make(real_dtype) builds the operator (buffers in that precision); x_shape is the input shape;
    complex_input says whether x is complex (then complex64/complex128 to match); known_norm is the
    spectral norm ||A||_2 where it is known analytically (checked by power iteration), else None.
    """

    name: str
    make: Callable[[torch.dtype], LinearOperator]
    x_shape: tuple[int, ...]
    complex_input: bool = False
    known_norm: float | None = None


def complex_of(real_dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if real_dtype == torch.float64 else torch.complex64


def random_like_shape(shape, real_dtype, is_complex, generator) -> torch.Tensor:
    if is_complex:
        re = torch.randn(shape, dtype=real_dtype, generator=generator)
        im = torch.randn(shape, dtype=real_dtype, generator=generator)
        return torch.complex(re, im)
    return torch.randn(shape, dtype=real_dtype, generator=generator)


def inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a, b> = sum(conj(a) * b), real or complex."""
    return (a.conj() * b).sum() if a.is_complex() else (a * b).sum()


def adjoint_mismatch(op: LinearOperator, x: torch.Tensor, y: torch.Tensor) -> float:
    """|<Ax, y> - <x, A^H y>| / (|<Ax, y>|)."""
    lhs = inner(op.A(x), y)
    rhs = inner(x, op.A_adjoint(y))
    return float((lhs - rhs).abs() / lhs.abs().clamp_min(1e-30))


def power_iteration_norm(op: LinearOperator, x0: torch.Tensor, iters: int = 200) -> float:
    """Spectral norm ||A||_2 = sqrt(largest eigenvalue of A^H A)."""
    x = x0 / x0.norm()
    lam = 0.0
    for _ in range(iters):
        z = op.normal(x)
        lam = float(z.norm())
        x = z / lam
    return lam**0.5
