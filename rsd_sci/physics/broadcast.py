"""A per-sample value (B,) against a batch: the one broadcast every floor needs.

    per_sample(v, like) = v.reshape(B, 1, ..., 1), with like.dim() − 1 ones

Example:
    >>> import torch
    >>> per_sample(torch.tensor([1.0, 2.0]), torch.zeros(2, 3, 4, 5)).shape
    torch.Size([2, 1, 1, 1])
"""

from __future__ import annotations

import torch


def per_sample(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, ..., 1) to broadcast against like (B, ...)."""
    return v.reshape(-1, *([1] * (like.dim() - 1)))
