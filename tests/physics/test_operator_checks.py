"""Linearity, adjointness, the normal operator, R, keep_measured and the norm for every operator in the
project, on every device there is.

The list is gathered from the per-family case files; adding an operator there runs every check on it, and
`test_every_operator_class_has_a_case` fails when an operator class of rsd_sci.physics has none.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
import torch

import rsd_sci.physics
from rsd_sci.physics.base import LinearOperator

from tests.support.operator_checks import OperatorCase, adjoint_mismatch, power_iteration_norm, random_like_shape

CASE_MODULES = [f"tests.support.{m}" for m in ("cases_base", "cases_mri", "cases_ct", "cases_image")]
CASES: list[OperatorCase] = [c for m in CASE_MODULES for c in importlib.import_module(m).CASES]
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}
DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=pytest.mark.cuda)]


def _inputs(case: OperatorCase, dtype: torch.dtype, seed: int = 0, device: str = "cpu"):
    g = torch.Generator().manual_seed(seed)
    op = case.make(dtype).to(device)
    x = random_like_shape(case.x_shape, dtype, case.complex_input, g).to(device)
    with torch.no_grad():
        y_like = op.A(x)
    y = random_like_shape(tuple(y_like.shape), dtype, y_like.is_complex(), g).to(device)
    return op, x, y, g


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_adjoint(case, dtype, device):
    op, x, y, _ = _inputs(case, dtype, device=device)
    assert adjoint_mismatch(op, x, y) < TOLERANCE[dtype]


@pytest.mark.cuda
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_cuda_matches_cpu(case):
    """The same operator moved with .to("cuda") (buffers and all) gives the CPU's A, A^H and R."""
    op, x, y, _ = _inputs(case, torch.float32)
    gpu = case.make(torch.float32).to("cuda")
    for f, g, v in ((op.A, gpu.A, x), (op.A_adjoint, gpu.A_adjoint, y), (op.R, gpu.R, y)):
        expected = f(v)
        torch.testing.assert_close(g(v.cuda()).cpu(), expected, rtol=1e-4, atol=1e-4 * float(expected.abs().max()))


def _operator_classes() -> set[type]:
    """Every LinearOperator subclass defined in rsd_sci.physics (all its modules imported)."""
    for info in pkgutil.iter_modules(rsd_sci.physics.__path__):
        importlib.import_module(f"rsd_sci.physics.{info.name}")
    found, todo = set(), [LinearOperator]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("rsd_sci.physics") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_every_operator_class_has_a_case():
    def classes_of(op):   # the operator and, for compositions, its parts
        yield type(op)
        for child in op.children():
            if isinstance(child, LinearOperator):
                yield from classes_of(child)

    covered = {cls for case in CASES for cls in classes_of(case.make(torch.float64))}
    missing = sorted(cls.__name__ for cls in _operator_classes() - covered)
    assert not missing, f"operator classes without a case in tests/support/cases_*.py: {missing}"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_keep_measured_is_a_projection_that_keeps_the_range(case):
    """P_M A = A (A only measures what it measures) and P_M P_M = P_M."""
    op, x, y, _ = _inputs(case, torch.float64)
    ax = op.A(x)
    assert torch.equal(op.keep_measured(ax), ax) or torch.allclose(op.keep_measured(ax), ax, atol=1e-12)
    once = op.keep_measured(y)
    assert torch.equal(op.keep_measured(once), once)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_reconstruction_is_linear(case):
    """R(y) (the adjoint, or the operator's own fixed reconstruction such as FBP) is linear."""
    op, _, y, g = _inputs(case, torch.float64)
    y2 = random_like_shape(tuple(y.shape), torch.float64, y.is_complex(), g)
    lhs, rhs = op.R(2.5 * y - y2), 2.5 * op.R(y) - op.R(y2)
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10 * rhs.abs().max().item())


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_linearity(case):
    op, x, _, g = _inputs(case, torch.float64)
    x2 = random_like_shape(case.x_shape, torch.float64, case.complex_input, g)
    a = complex(1.7, -0.4) if case.complex_input else 1.7
    lhs = op.A(a * x + x2)
    rhs = a * op.A(x) + op.A(x2)
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10 * rhs.abs().max().item())


OWN_NORMAL = [c for c in CASES if type(c.make(torch.float64)).normal is not LinearOperator.normal]


@pytest.mark.parametrize("case", OWN_NORMAL, ids=[c.name for c in OWN_NORMAL])
def test_normal_is_adjoint_of_forward(case):
    """Only operators with their own `normal` (the base's body is A^H A itself)."""
    op, x, _, _ = _inputs(case, torch.float64)
    expected = op.A_adjoint(op.A(x))
    assert torch.allclose(op.normal(x), expected, rtol=1e-10, atol=1e-12 * expected.abs().max().item())


@pytest.mark.parametrize("case", [c for c in CASES if c.known_norm is not None],
                         ids=[c.name for c in CASES if c.known_norm is not None])
def test_norm_by_power_iteration(case):
    op, x, _, _ = _inputs(case, torch.float64, seed=1)
    assert power_iteration_norm(op, x) == pytest.approx(case.known_norm, rel=1e-3)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_differentiable(case, device):
    """Gradients flow through A (training backpropagates through the physics)."""
    op, x, _, _ = _inputs(case, torch.float64, device=device)
    x = x.clone().requires_grad_(True)
    y = op.A(x)
    (y.abs() ** 2).sum().backward()
    # d/dx* ||Ax||^2 = 2 A^H A x  (torch's convention for complex gives the conjugate Wirtinger form)
    expected = 2 * op.normal(x.detach())
    assert torch.allclose(x.grad, expected, rtol=1e-8, atol=1e-10 * expected.abs().max().item())
