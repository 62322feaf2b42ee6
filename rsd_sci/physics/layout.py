"""The one place that converts between complex images and real network channels.

Networks see real tensors; the physics sees torch complex tensors (docs/architecture.md). The real layout is
STACKED: all real parts first, then all imaginary parts,

    complex (B, C, H, W)  <->  real (B, 2C, H, W) = [Re x_0, ..., Re x_{C-1}, Im x_0, ..., Im x_{C-1}]

so a single complex image (C = 1) is the usual two channels [real, imag]. The conversion is exact and
differentiable (torch autograd passes through `.real`, `.imag`, `torch.cat` and `torch.complex`).

Example:
    >>> import torch
    >>> from rsd_sci.physics.layout import channels_to_complex, complex_to_channels
    >>> z = torch.tensor([[[[1 + 2j]]]])
    >>> complex_to_channels(z).flatten().tolist()
    [1.0, 2.0]
    >>> bool((channels_to_complex(complex_to_channels(z)) == z).all())
    True
"""

from __future__ import annotations

import torch


def complex_to_channels(x: torch.Tensor) -> torch.Tensor:
    """complex (B, C, H, W) -> real (B, 2C, H, W), stacked [real parts, imaginary parts].

    A real input is taken as having zero imaginary part.
    """
    if x.dim() < 2:
        raise ValueError(f"expected (B, C, ...) with a channel dim, got shape {tuple(x.shape)}")
    if not x.is_complex():
        return torch.cat([x, torch.zeros_like(x)], dim=1)
    return torch.cat([x.real, x.imag], dim=1)


def channels_to_complex(x: torch.Tensor) -> torch.Tensor:
    """real (B, 2C, H, W) stacked [real parts, imaginary parts] -> complex (B, C, H, W).

    bf16/half inputs are promoted to float32 first (torch has no bf16 complex type), giving complex64.
    """
    if x.is_complex():
        raise ValueError("channels_to_complex expects a real tensor, got a complex one")
    if x.dim() < 2 or x.shape[1] % 2:
        raise ValueError(f"expected an even number of channels in dim 1, got shape {tuple(x.shape)}")
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    c = x.shape[1] // 2
    return torch.complex(x[:, :c], x[:, c:])
