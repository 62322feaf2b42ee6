"""Blur: 2-D cross-correlation with a fixed kernel and zero ('same') padding; the Gaussian blur.

For a kernel K of odd size (kh, kw) with centre (a, b) = (kh // 2, kw // 2),

    (A x)[i, j] = Σ_{p, q} K[p, q] · x[i + p − a, j + q − b],     x = 0 outside the image,

which is `torch.nn.functional.conv2d` with padding (a, b) and `scipy.ndimage.correlate(x, K,
mode="constant")`; for a symmetric kernel (the Gaussian) it is also convolution. The exact adjoint is
`conv_transpose2d` with the same kernel and padding. Any leading shape works: x is (..., H, W) and
every channel is blurred alike; complex x has its real and imaginary parts blurred separately.
Physics runs in float32 (float64 when given float64) even under autocast.

Example:
    >>> import torch
    >>> op = GaussianBlur(kernel_size=5, std=1.0)
    >>> round(float(op.kernel.sum()), 6), tuple(op.A(torch.ones(2, 3, 8, 8)).shape)
    (1.0, (2, 3, 8, 8))
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.precision import promote



def gaussian_kernel(kernel_size: int = 9, std: float = 1.5) -> torch.Tensor:
    """Normalised (kernel_size, kernel_size) float64 kernel.

    K[p, q] ∝ exp(−((p − a)² + (q − a)²) / (2·std²)), a = kernel_size // 2, Σ K = 1.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    if not std > 0:
        raise ValueError(f"std must be positive, got {std}")
    offset = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
    g = torch.exp(-offset**2 / (2.0 * std**2))
    k = g[:, None] * g[None, :]
    return k / k.sum()


class Convolution(LinearOperator):
    """A x = K ⋆ x (cross-correlation, zero padding, output the size of x); A^T = conv_transpose2d.

    Args:
        kernel: (kh, kw) real tensor with odd kh and kw (stored as a float64 buffer, cast per call).
    """

    def __init__(self, kernel: torch.Tensor):
        super().__init__()
        kernel = torch.as_tensor(kernel, dtype=torch.float64)
        if kernel.dim() != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"kernel must be 2-D with odd sides, got shape {tuple(kernel.shape)}")
        self.register_buffer("kernel", kernel)

    def _padding(self) -> tuple[int, int]:
        return self.kernel.shape[0] // 2, self.kernel.shape[1] // 2

    def _per_plane(self, fn, t: torch.Tensor) -> torch.Tensor:
        """Apply fn to (N, 1, H, W) planes of t (..., H, W); complex t part by part."""
        if t.dim() < 2:
            raise ValueError(f"blur input must be (..., H, W), got shape {tuple(t.shape)}")
        with torch.autocast(device_type=t.device.type, enabled=False):
            t = promote(t)
            if t.is_complex():
                return torch.complex(self._per_plane(fn, t.real), self._per_plane(fn, t.imag))
            planes = t.reshape(-1, 1, *t.shape[-2:])
            weight = self.kernel.to(device=t.device, dtype=t.dtype)[None, None]
            return fn(planes, weight).reshape(t.shape)

    def R(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """The blurred image itself (A^T would blur it twice): the corrupted-image baseline."""
        return promote(y)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Blurred image, same shape as x."""
        return self._per_plane(lambda p, w: F.conv2d(p, w, padding=self._padding()), x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Exact adjoint: correlation with the flipped kernel, zero padding handled by conv_transpose2d."""
        return self._per_plane(lambda p, w: F.conv_transpose2d(p, w, padding=self._padding()), y)

    def extra_repr(self) -> str:
        return f"kernel={tuple(self.kernel.shape)}"


class GaussianBlur(Convolution):
    """Isotropic Gaussian blur with a normalised kernel (sum 1).

    Args:
        kernel_size: odd side of the square kernel.  # 9 ≈ ±3 std for std = 1.5
        std: standard deviation in pixels.
    """

    def __init__(self, kernel_size: int = 9, std: float = 1.5):
        super().__init__(gaussian_kernel(kernel_size, std))
        self.kernel_size = int(kernel_size)
        self.std = float(std)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, std={self.std}"
