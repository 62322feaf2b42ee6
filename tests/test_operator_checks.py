"""Linearity, adjointness, normal operator and norm for every operator in the project.

The list is gathered from the per-family case files; adding an operator there runs every check on it.
"""

from __future__ import annotations

import importlib

import pytest
import torch

from operator_checks import (
    OperatorCase,
    adjoint_mismatch,
    complex_of,
    power_iteration_norm,
    random_like_shape,
)

CASE_MODULES = ["cases_base", "cases_mri", "cases_ct", "cases_image"]
CASES: list[OperatorCase] = [c for m in CASE_MODULES for c in importlib.import_module(m).CASES]
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def _inputs(case: OperatorCase, dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    op = case.make(dtype)
    x = random_like_shape(case.x_shape, dtype, case.complex_input, g)
    with torch.no_grad():
        y_like = op.A(x)
    y = random_like_shape(tuple(y_like.shape), dtype, y_like.is_complex(), g)
    return op, x, y, g


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_adjoint(case, dtype):
    op, x, y, _ = _inputs(case, dtype)
    assert adjoint_mismatch(op, x, y) < TOLERANCE[dtype]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_linearity(case):
    op, x, _, g = _inputs(case, torch.float64)
    x2 = random_like_shape(case.x_shape, torch.float64, case.complex_input, g)
    a = complex(1.7, -0.4) if case.complex_input else 1.7
    lhs = op.A(a * x + x2)
    rhs = a * op.A(x) + op.A(x2)
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10 * rhs.abs().max().item())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_normal_is_adjoint_of_forward(case):
    op, x, _, _ = _inputs(case, torch.float64)
    expected = op.A_adjoint(op.A(x))
    assert torch.allclose(op.normal(x), expected, rtol=1e-10, atol=1e-12 * expected.abs().max().item())


@pytest.mark.parametrize("case", [c for c in CASES if c.known_norm is not None],
                         ids=[c.name for c in CASES if c.known_norm is not None])
def test_norm_by_power_iteration(case):
    op, x, _, _ = _inputs(case, torch.float64, seed=1)
    assert power_iteration_norm(op, x) == pytest.approx(case.known_norm, rel=1e-3)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_differentiable(case):
    """Gradients flow through A (training backpropagates through the physics)."""
    op, x, _, _ = _inputs(case, torch.float64)
    x = x.clone().requires_grad_(True)
    y = op.A(x)
    (y.abs() ** 2).sum().backward()
    # d/dx* ||Ax||^2 = 2 A^H A x  (torch's convention for complex gives the conjugate Wirtinger form)
    expected = 2 * op.normal(x.detach())
    assert torch.allclose(x.grad, expected, rtol=1e-8, atol=1e-10 * expected.abs().max().item())
