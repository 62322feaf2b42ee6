"""MRIOperator against sigpy's Sense; rss / normalize_maps against numpy; complex layout; coil maps."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy.mri
import torch

from rsd_sci.physics import mri
from rsd_sci.physics.coil_maps import birdcage_maps, espirit_maps
from rsd_sci.physics.fourier import fft2c
from rsd_sci.physics.layout import channels_to_complex, complex_to_channels
from rsd_sci.physics.mri import MRIOperator, normalize_maps, rss

RTOL = {torch.float32: 2e-5, torch.float64: 1e-12}
CDT = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def _crandn(rng, *shape):
    return rng.standard_normal(shape) + 1j * rng.standard_normal(shape)


def _rel(a: torch.Tensor, b: np.ndarray) -> float:
    return float(np.abs(a.detach().numpy().astype(np.complex128) - b).max() / np.abs(b).max())


def _sigpy_ops(maps: np.ndarray, masks: np.ndarray):
    """One sigpy Sense per sample; weights are 0/1 masks so sigpy's sqrt(weights) changes nothing."""
    b, _, h, w = maps.shape
    return [sigpy.mri.linop.Sense(maps[i], weights=np.broadcast_to(masks[i], (h, w)).astype(np.float64))
            for i in range(b)]


def _problem(b, c, h, w, two_d, seed=0):
    rng = np.random.default_rng(seed)
    maps = _crandn(rng, b, c, h, w) / np.sqrt(c)
    masks = rng.random((b, h, w) if two_d else (b, 1, w)) < 0.4
    x = _crandn(rng, b, 1, h, w)
    y = _crandn(rng, b, c, h, w)
    return maps, masks, x, y


CASES = [(3, 4, 16, 12, False), (2, 3, 10, 14, True), (2, 5, 9, 11, False), (2, 2, 7, 8, True)]
IDS = ["lines-even", "2d-even", "lines-odd", "2d-mixed"]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sense_matches_sigpy(case, dtype):
    b, c, h, w, two_d = case
    maps, masks, x, y = _problem(b, c, h, w, two_d)
    ops = _sigpy_ops(maps, masks)
    mask_t = torch.from_numpy(masks).to(dtype)
    mask_t = mask_t[:, None] if two_d else mask_t[:, :, None, :]
    op = MRIOperator(mask_t, torch.from_numpy(maps).to(CDT[dtype]))
    fwd = op.A(torch.from_numpy(x).to(CDT[dtype]))
    adj = op.A_adjoint(torch.from_numpy(y).to(CDT[dtype]))
    assert fwd.shape == (b, c, h, w) and adj.shape == (b, 1, h, w)
    assert fwd.dtype == CDT[dtype]
    ref_fwd = np.stack([ops[i](x[i, 0]) for i in range(b)])
    ref_adj = np.stack([ops[i].H(y[i]) for i in range(b)])[:, None]
    assert _rel(fwd, ref_fwd) < RTOL[dtype]
    assert _rel(adj, ref_adj) < RTOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_single_coil_matches_sigpy(dtype):
    rng = np.random.default_rng(1)
    h, w = 12, 16
    line = rng.random(w) < 0.5
    x, y = _crandn(rng, 2, 1, h, w), _crandn(rng, 2, 1, h, w)
    ref = _sigpy_ops(np.ones((2, 1, h, w), complex), np.stack([line[None]] * 2))
    op = MRIOperator(torch.from_numpy(line))  # (W,) shared by the batch, bool
    assert _rel(op.A(torch.from_numpy(x).to(CDT[dtype])), np.stack([r(x[i, 0]) for i, r in enumerate(ref)])) \
        < RTOL[dtype]
    assert _rel(op.A_adjoint(torch.from_numpy(y).to(CDT[dtype])),
                np.stack([r.H(y[i]) for i, r in enumerate(ref)])[:, None]) < RTOL[dtype]


def test_mask_shapes_are_equivalent():
    rng = np.random.default_rng(2)
    h, w = 8, 10
    line = torch.from_numpy(rng.random(w) < 0.5).float()
    x = torch.from_numpy(_crandn(rng, 3, 1, h, w))
    ref = MRIOperator(line.view(1, 1, 1, w)).A(x)
    for m in (line, line.expand(h, w), line.expand(3, h, w), line.bool()):
        assert torch.allclose(MRIOperator(m).A(x), ref, rtol=0, atol=1e-14)


@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "grad"])
@pytest.mark.parametrize("chunk_bytes", [1, 2**30], ids=["chunks", "whole"])
def test_cpu_paths_agree_with_sigpy(monkeypatch, grad, chunk_bytes):
    """Both CPU paths give sigpy's numbers and the right gradient: chunks of one sample (forced by a tiny
    chunk budget) and the whole batch at once."""
    monkeypatch.setattr(mri, "CPU_CHUNK_BYTES", chunk_bytes)
    b, c, h, w = 3, 4, 16, 12
    maps, masks, x, y = _problem(b, c, h, w, False, seed=3)
    ops = _sigpy_ops(maps, masks)
    op = MRIOperator(torch.from_numpy(masks)[:, :, None, :], torch.from_numpy(maps))
    xt = torch.from_numpy(x).requires_grad_(grad)
    fwd = op.A(xt)
    assert _rel(fwd, np.stack([ops[i](x[i, 0]) for i in range(b)])) < 1e-12
    assert _rel(op.A_adjoint(torch.from_numpy(y)), np.stack([ops[i].H(y[i]) for i in range(b)])[:, None]) < 1e-12
    normal_ref = np.stack([ops[i].N(x[i, 0]) for i in range(b)])[:, None]
    assert _rel(op.normal(torch.from_numpy(x)), normal_ref) < 1e-12
    if grad:
        fwd.abs().square().sum().backward()
        assert _rel(xt.grad, 2 * normal_ref) < 1e-12


def test_batch_broadcast_of_image_against_per_sample_masks():
    rng = np.random.default_rng(4)
    masks = torch.from_numpy(rng.random((3, 1, 1, 8)) < 0.5).float()
    x = torch.from_numpy(_crandn(rng, 1, 1, 6, 8))
    out = MRIOperator(masks).A(x)
    assert out.shape == (3, 1, 6, 8)
    for i in range(3):
        assert torch.allclose(out[i:i + 1], MRIOperator(masks[i]).A(x), atol=1e-14)


def test_with_mask_shares_maps_and_matches_fresh_operator():
    rng = np.random.default_rng(5)
    maps = torch.from_numpy(_crandn(rng, 2, 3, 8, 10))
    m1 = torch.from_numpy(rng.random((2, 1, 1, 10)) < 0.6).float()
    m2 = m1 * torch.from_numpy(rng.random((2, 1, 1, 10)) < 0.7).float()
    op = MRIOperator(m1, maps)
    sub = op.with_mask(m2)
    assert sub.folded_maps is op.folded_maps and torch.allclose(sub.maps, maps)
    x = torch.from_numpy(_crandn(rng, 2, 1, 8, 10))
    assert torch.equal(sub.A(x), MRIOperator(m2, maps).A(x))


def test_module_to_dtype_keeps_complex_maps():
    rng = np.random.default_rng(10)
    maps = torch.from_numpy(_crandn(rng, 1, 2, 6, 8)).to(torch.complex64)
    op = MRIOperator(torch.ones(8), maps).to(torch.float64)
    assert op.maps.dtype == torch.complex128 and torch.allclose(op.maps, maps.to(torch.complex128))


def test_bf16_autocast_does_not_change_the_result():
    rng = np.random.default_rng(6)
    maps = torch.from_numpy(_crandn(rng, 2, 3, 8, 8)).to(torch.complex64)
    op = MRIOperator(torch.from_numpy(rng.random(8) < 0.5), maps)
    x = torch.from_numpy(_crandn(rng, 2, 1, 8, 8)).to(torch.complex64)
    ref_a, ref_n = op.A(x), op.normal(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        a, n = op.A(x), op.normal(x)
        real_bf16 = op.A(x.real.to(torch.bfloat16))
    assert a.dtype == torch.complex64 and torch.equal(a, ref_a) and torch.equal(n, ref_n)
    assert real_bf16.dtype == torch.complex64
    assert torch.allclose(real_bf16, op.A(x.real.to(torch.bfloat16).float()))


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="width"):
        MRIOperator(torch.ones(10), torch.ones(1, 2, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="real"):
        MRIOperator(torch.ones(8, dtype=torch.complex64))
    op = MRIOperator(torch.ones(8), torch.ones(1, 2, 8, 8, dtype=torch.complex64))
    with pytest.raises(ValueError):
        op.A(torch.ones(1, 2, 8, 8, dtype=torch.complex64))  # two image channels
    with pytest.raises(ValueError):
        op.A_adjoint(torch.ones(1, 3, 8, 8, dtype=torch.complex64))  # wrong coil count


def test_rss_and_normalize_maps_against_numpy():
    rng = np.random.default_rng(7)
    x = _crandn(rng, 2, 5, 6, 7)
    ref = np.sqrt((np.abs(x) ** 2).sum(axis=1))
    assert np.allclose(rss(torch.from_numpy(x)).numpy(), ref, rtol=1e-12)
    assert rss(torch.from_numpy(x), keepdim=True).shape == (2, 1, 6, 7)
    assert np.allclose(rss(x), ref, rtol=1e-12)
    x[:, :, 0, 0] = 0  # a pixel no coil sees stays zero
    for maps in (torch.from_numpy(x), x):
        unit = normalize_maps(maps)
        r = np.sqrt((np.abs(np.asarray(unit)) ** 2).sum(axis=1))
        assert np.allclose(r[:, 1:, :], 1, atol=1e-12) and np.all(r[:, 0, 0] == 0)
        assert np.allclose(np.asarray(unit)[:, :, 3, 3], x[:, :, 3, 3] / ref[:, None, 3, 3])


def test_layout_stacks_real_then_imaginary():
    rng = np.random.default_rng(8)
    z = _crandn(rng, 2, 3, 4, 5)
    ch = complex_to_channels(torch.from_numpy(z))
    assert np.array_equal(ch.numpy(), np.concatenate([z.real, z.imag], axis=1))
    assert torch.equal(channels_to_complex(ch), torch.from_numpy(z))
    assert channels_to_complex(ch.to(torch.bfloat16)).dtype == torch.complex64
    with pytest.raises(ValueError):
        channels_to_complex(torch.zeros(1, 3, 2, 2))


def _smooth_object(h, w):
    yy, xx = np.mgrid[:h, :w]
    yy, xx = (yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)
    r2 = (yy / 0.7) ** 2 + (xx / 0.55) ** 2
    obj = np.clip(1.5 * (1 - r2), 0, 1) ** 0.5 * (1 + 0.3 * np.cos(3 * xx)) * np.exp(1j * 0.9 * (xx + yy))
    return obj, r2 < 0.9


def test_birdcage_maps_unit_rss():
    maps = birdcage_maps(6, 20, 24)
    assert maps.shape == (6, 20, 24) and maps.dtype == np.complex64
    assert np.allclose(np.sqrt((np.abs(maps) ** 2).sum(0)), 1, atol=1e-5)


def test_espirit_recovers_the_coil_subspace():
    """On k-space simulated with birdcage maps, ESPIRiT's maps equal the true ones up to a phase per pixel:
    |<S_est, S_true>| > 0.999 inside the object, and S_est·(S_est^H d) reproduces the coil images d to
    1 % (relative, inside the object)."""
    h = w = 64
    obj, inside = _smooth_object(h, w)
    true = birdcage_maps(8, h, w)
    coils = true * obj
    maps = espirit_maps(fft2c(torch.from_numpy(coils)).numpy(), calib_width=24)
    assert maps.shape == (8, h, w) and maps.dtype == np.complex64
    overlap = np.abs((maps.conj() * true).sum(0))
    assert overlap[inside].min() > 0.999
    combined = (maps.conj() * coils).sum(0)
    resid = np.linalg.norm((maps * combined - coils)[:, inside]) / np.linalg.norm(coils[:, inside])
    assert resid < 0.01
    other = birdcage_maps(8, h, w, radius=0.6)  # the check can fail: other coils do not span it
    assert np.abs((other.conj() * true).sum(0))[inside].min() < 0.99
