"""Down-sampling by an integer factor f: box average over f×f blocks, then decimation.

    x        (..., H, W) real or complex, H and W divisible by f
    A x      (..., H/f, W/f),   (A x)[i, j] = f⁻² Σ_{p, q < f} x[f·i + p, f·j + q]
    A^T y    (..., H, W),       (A^T y)[f·i + p, f·j + q] = f⁻² y[i, j]   (nearest up-sampling / f²)
    R y      = f²·A^T y                                                  (nearest up-sampling)

A·A^T = f⁻²·I, so ‖A‖ = 1/f. A equals `skimage.transform.downscale_local_mean(x, (f, f))`.
Physics runs in float32 (float64 when given float64) even under autocast.

Example:
    >>> import torch
    >>> Downsample(2).A(torch.arange(16.0).reshape(1, 1, 4, 4))
    tensor([[[[ 2.5000,  4.5000],
              [10.5000, 12.5000]]]])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.precision import promote



class Downsample(LinearOperator):
    """A = f×f average pooling; A^T = nearest-neighbour up-sampling divided by f².

    Args:
        factor: the integer factor f ≥ 1 (image sides must be divisible by it).
    """

    def __init__(self, factor: int):
        super().__init__()
        if int(factor) != factor or factor < 1:
            raise ValueError(f"factor must be a positive integer, got {factor}")
        self.factor = int(factor)

    def _real_or_parts(self, fn, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=t.device.type, enabled=False):
            t = promote(t)
            if t.is_complex():
                return torch.complex(fn(t.real), fn(t.imag))
            return fn(t)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        f = self.factor
        planes = x.reshape(-1, 1, h, w)
        return F.avg_pool2d(planes, f, stride=f).reshape(*x.shape[:-2], h // f, w // f)

    def _upsample(self, y: torch.Tensor) -> torch.Tensor:
        h, w = y.shape[-2:]
        f = self.factor
        up = y[..., :, None, :, None].expand(*y.shape[:-2], h, f, w, f)
        return up.reshape(*y.shape[:-2], h * f, w * f) / (f * f)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Block means: (..., H, W) -> (..., H/f, W/f)."""
        if x.dim() < 2 or x.shape[-2] % self.factor or x.shape[-1] % self.factor:
            raise ValueError(f"image sides {tuple(x.shape[-2:])} must be divisible by factor {self.factor}")
        return self._real_or_parts(self._pool, x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Nearest up-sampling divided by f²: (..., h, w) -> (..., f·h, f·w)."""
        if y.dim() < 2:
            raise ValueError(f"down-sampled image must be (..., h, w), got shape {tuple(y.shape)}")
        return self._real_or_parts(self._upsample, y)

    def R(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Nearest up-sampling f²·A^T y: the low-resolution image on the full grid (the corrupted-image
        baseline; A^T alone would also divide it by f²)."""
        return self.A_adjoint(y) * (self.factor * self.factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor}"
