"""The centred orthonormal FFT against numpy's shifted FFT, sigpy.fft and fastMRI's fft2c."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsd_sci.physics.fourier import CenteredFFT, checkerboard, fft2c, ifft2c

SIZES = [(8, 8), (6, 10), (10, 4), (5, 7), (6, 7), (7, 6), (1, 4), (320, 368)]
PRECISION = {torch.complex64: 2e-6, torch.complex128: 1e-13}  # relative, max-norm


def _random(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    return torch.from_numpy(x).to(dtype)


def _numpy_fft2c(x: np.ndarray, inverse: bool = False) -> np.ndarray:
    f = np.fft.ifft2 if inverse else np.fft.fft2
    return np.fft.fftshift(f(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def _close(ours: torch.Tensor, ref: np.ndarray, dtype) -> None:
    ref = np.asarray(ref)
    err = np.abs(ours.numpy().astype(np.complex128) - ref).max() / np.abs(ref).max()
    assert err < PRECISION[dtype], err


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("size", SIZES, ids=[f"{h}x{w}" for h, w in SIZES])
def test_matches_numpy_shifted_fft(size, dtype):
    x = _random((2, 3) + size, dtype)
    ref_in = x.numpy().astype(np.complex128)
    _close(fft2c(x), _numpy_fft2c(ref_in), dtype)
    _close(ifft2c(x), _numpy_fft2c(ref_in, inverse=True), dtype)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("size", [(8, 12), (9, 5), (6, 5)], ids=["even", "odd", "mixed"])
def test_matches_sigpy(size, dtype):
    import sigpy as sp
    x = _random((3,) + size, dtype, seed=1)
    ref_in = x.numpy().astype(np.complex128)
    _close(fft2c(x), sp.fft(ref_in, axes=(-2, -1)), dtype)
    _close(ifft2c(x), sp.ifft(ref_in, axes=(-2, -1)), dtype)


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=["c64", "c128"])
@pytest.mark.parametrize("size", [(16, 12), (15, 11), (14, 9)], ids=["even", "odd", "mixed"])
def test_matches_fastmri(size, dtype):
    """fastMRI's fft2c/ifft2c act on real (..., H, W, 2) tensors."""
    import fastmri
    x = _random((2, 1) + size, dtype, seed=2)
    x64 = x.to(torch.complex128)
    ref = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(x64).contiguous()))
    iref = torch.view_as_complex(fastmri.ifft2c(torch.view_as_real(x64).contiguous()))
    _close(fft2c(x), ref.numpy(), dtype)
    _close(ifft2c(x), iref.numpy(), dtype)


@pytest.mark.parametrize("size", [(8, 6), (7, 9)], ids=["even", "odd"])
def test_dc_at_centre_and_unitary(size):
    """A constant image puts all its energy at (H//2, W//2); the transform preserves norms."""
    h, w = size
    k = fft2c(torch.ones(h, w, dtype=torch.complex128))
    expected = torch.zeros(h, w, dtype=torch.complex128)
    expected[h // 2, w // 2] = (h * w) ** 0.5
    assert torch.allclose(k, expected, atol=1e-12)
    x = _random((4, h, w), torch.complex128, seed=3)
    assert torch.linalg.vector_norm(fft2c(x)) == pytest.approx(float(torch.linalg.vector_norm(x)), rel=1e-12)
    assert torch.allclose(ifft2c(fft2c(x)), x, atol=1e-12)


def test_real_and_bf16_inputs_are_promoted():
    x = torch.randn(2, 8, 8)
    assert fft2c(x).dtype == torch.complex64
    assert fft2c(x.double()).dtype == torch.complex128
    assert torch.allclose(fft2c(x), fft2c(x.to(torch.complex64)))
    assert fft2c(x.to(torch.bfloat16)).dtype == torch.complex64


def test_checkerboard_cached_and_signed():
    a = checkerboard(4, 6, torch.float32, torch.device("cpu"))
    assert a is checkerboard(4, 6, torch.float32, torch.device("cpu"))
    i, j = np.mgrid[:4, :6]
    assert np.array_equal(a.numpy(), (-1.0) ** (i + j))


def test_gradient_is_adjoint():
    """d/dx* ||fft2c(x) - y||² / 2 = ifft2c(fft2c(x) - y) (unitary: x - ifft2c(y))."""
    x = _random((1, 1, 6, 8), torch.complex128).requires_grad_(True)
    y = _random((1, 1, 6, 8), torch.complex128, seed=5)
    (0.5 * (fft2c(x) - y).abs().square().sum()).backward()
    assert torch.allclose(x.grad, x.detach() - ifft2c(y), atol=1e-12)


def test_operator_wrapper():
    x = _random((2, 1, 6, 8), torch.complex64)
    op = CenteredFFT()
    assert torch.equal(op.A(x), fft2c(x))
    assert torch.equal(op.A_adjoint(x), ifft2c(x))
