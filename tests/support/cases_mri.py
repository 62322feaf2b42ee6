"""Operator cases: MRI (centred FFT, single-coil masked Fourier, multi-coil SENSE).

Known norms: F is unitary, so ||M F|| = 1 for any non-empty 0/1 mask M; with unit-RSS maps and a full
mask A^H A = Σ_c |S_c|² = I, so ||A|| = 1. A masked SENSE operator has ||A|| <= 1 with no closed form,
so no norm is stated there.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from tests.support.operator_checks import OperatorCase, complex_of
from rsd_sci.physics.coil_maps import birdcage_maps
from rsd_sci.physics.fourier import CenteredFFT
from rsd_sci.physics.masks import fastmri_line_mask, variable_density_mask
from rsd_sci.physics.mri import MRIOperator


@functools.lru_cache(maxsize=None)
def _line_masks(width: int, n: int) -> np.ndarray:
    """(n, W) bool fastMRI random masks, R = 4, one seed per row."""
    return np.stack([fastmri_line_mask("random", width, [0.08], [4], seed).mask for seed in range(n)])


@functools.lru_cache(maxsize=None)
def _poisson(h: int, w: int) -> np.ndarray:
    return variable_density_mask("poisson", (h, w), 3.0, calib=(4, 4), seed=0)


def _maps(b: int, c: int, h: int, w: int, dt: torch.dtype, phase_seed: int = 0) -> torch.Tensor:
    """Unit-RSS birdcage maps with a per-sample random global phase per coil, (b, c, h, w)."""
    base = torch.from_numpy(birdcage_maps(c, h, w)).to(complex_of(dt))
    g = torch.Generator().manual_seed(phase_seed)
    phase = torch.exp(1j * 2 * torch.pi * torch.rand(b, c, 1, 1, generator=g, dtype=torch.float64))
    return base[None] * phase.to(complex_of(dt))


def _single_line(dt):
    return MRIOperator(torch.from_numpy(_line_masks(16, 1)[0]).to(dt))


def _single_poisson(dt):
    return MRIOperator(torch.from_numpy(_poisson(40, 32)).to(dt))


def _single_per_sample(dt):
    return MRIOperator(torch.from_numpy(_line_masks(20, 3)).to(dt)[:, None, None, :])


def _sense_full(dt):
    return MRIOperator(torch.ones(16, dtype=dt), _maps(2, 4, 12, 16, dt))


def _sense_lines(dt):
    masks = torch.from_numpy(_line_masks(16, 2)).to(dt)[:, None, None, :]
    return MRIOperator(masks, _maps(2, 5, 14, 16, dt, phase_seed=1))


def _sense_odd(dt):
    mask = torch.ones(15, 13, dtype=dt)  # a 2-D mask: every third column dropped, the centre kept
    mask[:, ::3] = 0
    mask[:, 5:8] = 1
    return MRIOperator(mask, _maps(1, 3, 15, 13, dt, phase_seed=2))


def _single_odd(dt):
    mask = torch.zeros(9, dtype=dt)
    mask[::2] = 1
    return MRIOperator(mask)


CASES = [
    OperatorCase("fft2c", lambda dt: CenteredFFT(), (2, 1, 10, 12), complex_input=True, known_norm=1.0),
    OperatorCase("fft2c_odd", lambda dt: CenteredFFT(), (2, 1, 9, 7), complex_input=True, known_norm=1.0),
    OperatorCase("mri_single_line", _single_line, (2, 1, 12, 16), complex_input=True, known_norm=1.0),
    OperatorCase("mri_single_poisson2d", _single_poisson, (2, 1, 40, 32), complex_input=True,
                 known_norm=1.0),
    OperatorCase("mri_single_per_sample_masks", _single_per_sample, (3, 1, 10, 20), complex_input=True,
                 known_norm=1.0),
    OperatorCase("mri_single_odd", _single_odd, (2, 1, 7, 9), complex_input=True, known_norm=1.0),
    OperatorCase("mri_sense_full_mask", _sense_full, (2, 1, 12, 16), complex_input=True, known_norm=1.0),
    OperatorCase("mri_sense_lines", _sense_lines, (2, 1, 14, 16), complex_input=True),
    OperatorCase("mri_sense_odd", _sense_odd, (1, 1, 15, 13), complex_input=True),
]
