"""Our torch ESPIRiT (rsd_sci.physics.espirit) against sigpy's EspiritCalib, the reference.

Agreement is checked inside the object, where the eigenvalue gap is large: outside it the dominant
eigenvalue is nearly degenerate and neither sigpy's 100 power iterations from ones nor ours converge
to one vector (both are then valid ESPIRiT maps, different ones)."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy.mri
import torch
from sigpy.mri.app import EspiritCalib

from rsd_sci.physics.coil_maps import espirit_maps
from rsd_sci.physics.espirit import espirit
from tests.support.fastmri_schema import fft2c, ifft2c, make_fastmri_kspace


def _sigpy(y: np.ndarray, calib: int, kernel: int):
    maps, eig = EspiritCalib(y, calib_width=calib, thresh=0.02, kernel_width=kernel, crop=0.0,
                             show_pbar=False, output_eigenvalue=True).run()
    return maps, eig[0]


def _rel(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    return float(np.linalg.norm((a - b)[..., where]) / np.linalg.norm(b[..., where]))


def test_birdcage_maps_recovered_in_the_centre():
    """sigpy's own test (8 × 32 × 32 birdcage maps, k-space = F(maps)): |maps| to 1e-3 in [8:24, 8:24]."""
    true = sigpy.mri.birdcage_maps((8, 32, 32), dtype=np.complex64)
    y = fft2c(true).astype(np.complex64)
    maps, eig = espirit(torch.from_numpy(y))
    maps = maps.numpy()
    np.testing.assert_allclose(np.abs(maps)[:, 8:24, 8:24], np.abs(true)[:, 8:24, 8:24], rtol=1e-3, atol=1e-3)
    ref, ref_eig = _sigpy(y, 24, 6)
    np.testing.assert_allclose(maps[:, 8:24, 8:24], ref[:, 8:24, 8:24], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(eig.numpy()[8:24, 8:24], ref_eig[8:24, 8:24], atol=1e-3)


def _agreement(coils: int, size: int) -> dict:
    """fastMRI-like noisy k-space (phantom under birdcage maps, noise 1e-3 of the peak), undersampled
    at R = 4 outside the calibration lines as `data make` does; errors inside the object."""
    k = make_fastmri_kspace(1, coils, size, size, seed=3)[0]
    rng = np.random.default_rng(0)
    lines = rng.random(size) < 0.25
    calib = 24
    lines[size // 2 - calib // 2: size // 2 + calib // 2 + 1] = True
    y = (k * lines[None, None, :]).astype(np.complex64)
    rss = np.sqrt((np.abs(ifft2c(k)) ** 2).sum(0))
    inside = rss > 0.05 * rss.max()
    ours, eig = espirit(torch.from_numpy(y), calib_width=calib, kernel_width=6)
    ours, eig = ours.numpy(), eig.numpy()
    ref, ref_eig = _sigpy(y, calib, 6)
    assert ours.shape == ref.shape and ours.dtype == np.complex64
    return dict(maps=_rel(ours, ref, inside), abs=_rel(np.abs(ours), np.abs(ref), inside),
                eig=float(np.abs(eig - ref_eig)[inside].max()), unit=float(np.abs(
                    np.sqrt((np.abs(ours) ** 2).sum(0)) - 1)[inside].max()))


def test_agrees_with_sigpy_15_coils_128():
    err = _agreement(15, 128)
    assert err["maps"] < 1e-3 and err["abs"] < 1e-3 and err["eig"] < 1e-3 and err["unit"] < 1e-4, err


@pytest.mark.slow
def test_agrees_with_sigpy_15_coils_320():
    """The fastMRI knee size (sigpy takes ~10 s here on 2 cores)."""
    err = _agreement(15, 320)
    assert err["maps"] < 1e-3 and err["abs"] < 1e-3 and err["eig"] < 1e-3 and err["unit"] < 1e-4, err


def test_a_batch_equals_its_slices():
    y = torch.from_numpy(make_fastmri_kspace(2, 4, 48, 40, seed=1))
    maps, eig = espirit(y, calib_width=16, kernel_width=5, rows_per_chunk=8)
    for i in range(2):
        one, one_eig = espirit(y[i], calib_width=16, kernel_width=5)
        assert torch.allclose(maps[i], one, atol=1e-5) and torch.allclose(eig[i], one_eig, atol=1e-5)


def test_crop_zeroes_low_eigenvalues_and_phase_is_sigpys():
    y = torch.from_numpy(make_fastmri_kspace(1, 6, 40, 40, seed=2)[0])
    maps, eig = espirit(y, calib_width=20, kernel_width=5, crop=0.95)
    assert torch.all(maps[:, eig <= 0.95] == 0)
    s0 = maps[0][eig > 0.95]
    assert torch.allclose(s0.imag, torch.zeros_like(s0.imag), atol=1e-6) and bool((s0.real >= 0).all())


def test_espirit_maps_methods_agree_and_refuse_bad_input():
    y = make_fastmri_kspace(1, 6, 48, 48, seed=4)[0]
    rss = np.sqrt((np.abs(ifft2c(y)) ** 2).sum(0))
    inside = rss > 0.05 * rss.max()
    a = espirit_maps(y, calib_width=24, method="torch")
    b = espirit_maps(y, calib_width=24, method="sigpy")
    assert a.dtype == b.dtype == np.complex64 and _rel(a, b, inside) < 1e-3
    with pytest.raises(ValueError, match="unknown ESPIRiT method"):
        espirit_maps(y, method="bart")
    with pytest.raises(ValueError, match="complex multi-coil"):
        espirit(torch.zeros(4, 8, 8))


@pytest.mark.cuda
def test_cuda_equals_cpu():
    y = torch.from_numpy(make_fastmri_kspace(2, 15, 320, 320, seed=5))
    cpu, cpu_eig = espirit(y)
    gpu, gpu_eig = espirit(y.cuda())
    rss = np.sqrt((np.abs(ifft2c(y.numpy())) ** 2).sum(1))
    inside = torch.from_numpy(rss > 0.05 * rss.max(axis=(-2, -1), keepdims=True))
    err = (gpu.cpu() - cpu).abs().square().sum(1).sqrt()[inside].max()
    assert err < 1e-3 and (gpu_eig.cpu() - cpu_eig).abs()[inside].max() < 1e-3
