"""The distillation's held-out signals need no clean data; the spectrum signal must see blur.

A generator whose images are too smooth has measurements whose power falls off too fast across the
measured k-space columns (MRI) or detector frequencies (CT). `Measurement.measured_power` with
`log_spectrum_distance` must tell such measurements from real ones more clearly than it tells two
independent sets of sharp phantoms apart.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rsd_sci.data.phantoms import ct_phantoms, mri_phantoms
from rsd_sci.distill.losses import measure
from rsd_sci.measurement import family_of
from rsd_sci.metrics.distribution import log_spectrum_distance
from rsd_sci.physics.ct import view_mask
from rsd_sci.physics.masks import MaskSpec

N, SIZE = 24, 32


def _blur(x: torch.Tensor) -> torch.Tensor:
    """A 5x5 box blur of a real (B, 1, H, W) or complex image, zero padded."""
    kernel = torch.full((1, 1, 5, 5), 1 / 25)
    if x.is_complex():
        return torch.complex(_blur(x.real), _blur(x.imag))
    return F.conv2d(x, kernel, padding=2)


def _mri(seed: int):
    spec = {"family": "mri", "shape": [SIZE, SIZE], "coils": 1,
            "mask": {"kind": "random", "acceleration": 4, "center_fraction": 0.08}}
    made = [MaskSpec("random", 4, center_fraction=0.08).make((SIZE, SIZE), seed=i) for i in range(N)]
    batch = {"masks": torch.from_numpy(np.stack([m.mask for m in made])),
             "centers": torch.from_numpy(np.stack([m.center for m in made])), "index": torch.arange(N)}
    x = torch.from_numpy(mri_phantoms(N, SIZE, seed))[:, None]
    return spec, batch, x


def _ct(seed: int):
    spec = {"family": "ct", "image_size": SIZE, "n_angles": 45, "n_views": 15, "view_kind": "sparse"}
    batch = {"masks": torch.from_numpy(np.stack([view_mask(45, 15)] * N)), "index": torch.arange(N)}
    x = torch.from_numpy(ct_phantoms(N, SIZE, seed))[:, None]
    return spec, batch, x / x.amax()


@pytest.mark.parametrize("make", [_mri, _ct], ids=["mri", "ct"])
def test_measured_power_sees_blur(make):
    spec, batch, x_real = make(seed=0)
    _, _, x_other = make(seed=1)
    family = family_of(spec)
    op = family.operator(dict(batch, y=torch.zeros(1)))
    sigma_n = torch.full((N,), 0.01)
    g = torch.Generator().manual_seed(0)

    def measured(x):
        y = measure(op, x, sigma_n, lambda shape: torch.randn(N, *shape, generator=g))
        return family.measure(dict(batch, y=y)).measured_power()

    real = measured(x_real)
    keep = real > 0
    sharp = log_spectrum_distance(measured(x_other), real, keep)
    blurred = log_spectrum_distance(measured(_blur(x_other)), real, keep)
    assert blurred > 3 * sharp, (sharp, blurred)
