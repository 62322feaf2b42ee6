"""Data consistency from a starting image: conjugate gradients on the normal equations (docs/method.md,
Sampling: Posterior, "Finish with data consistency").

    A^H A x = A^H y,   x_0 = the start (e.g. the generator's image),   `iters` CG steps per sample

CG from x_0 changes x only inside the Krylov space of A^H A, i.e. in the rows the operator measures: what
the measurement does not see stays the start's, and after enough steps x is the point of {x : A x = y}
(least squares, for noisy y) nearest to x_0. For single-coil MRI A^H A = F^H M F is a projection, so one
step is exact: the measured k-space lines replaced by y. Multi-coil MRI and CT need a few steps; few steps
also stop early, before the solve fits the measurement noise. Written here rather than with sigpy's CG
because it runs batched on the operator's own torch tensors (any device), where sigpy's runs one sample at
a time on numpy arrays.

Shapes: x (B, ...) in the operator's image layout (complex (B, 1, H, W) for MRI, real (B, 1, H, W) for CT).

Example (single-coil MRI: one step puts the measured lines back):
    >>> import torch
    >>> from rsd_sci.measurement import family_of
    >>> from rsd_sci.physics.fourier import fft2c
    >>> family = family_of({"family": "mri", "shape": [4, 4], "coils": 1})
    >>> truth = torch.randn(1, 1, 4, 4, dtype=torch.complex64)
    >>> mask = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    >>> m = family.measure({"y": fft2c(truth) * mask, "masks": mask})
    >>> x = conjugate_gradient(m, torch.zeros_like(truth), iters=1)
    >>> bool(torch.allclose(fft2c(x) * mask, fft2c(truth) * mask, atol=1e-5))
    True
"""

from __future__ import annotations

import torch

from rsd_sci.physics.broadcast import per_sample
from rsd_sci.physics.precision import promote


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Re⟨a, b⟩ per sample, (B,)."""
    return (a.conj() * b).real.flatten(1).sum(dim=1) if a.is_complex() else (a * b).flatten(1).sum(dim=1)


@torch.no_grad()
def conjugate_gradient(m, x: torch.Tensor, iters: int) -> torch.Tensor:
    """`iters` CG steps on A^H A x = A^H y from x (see the module docstring); m a `Measurement`."""
    if iters < 0:
        raise ValueError(f"iters must be at least 0, got {iters}")
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = promote(x).clone()
        r = m.A_adjoint(promote(m.y)) - m.op.normal(x)
        p, rs = r.clone(), _dot(r, r)
        for _ in range(iters):
            ap = m.op.normal(p)
            curvature = _dot(p, ap)
            step = torch.where(curvature > 0, rs / curvature.clamp_min(1e-30), torch.zeros_like(rs))
            x = x + per_sample(step, x) * p
            r = r - per_sample(step, r) * ap
            rs_new = _dot(r, r)
            p = r + per_sample(torch.where(rs > 0, rs_new / rs.clamp_min(1e-30), torch.zeros_like(rs)), p) * p
            rs = rs_new
        return x
