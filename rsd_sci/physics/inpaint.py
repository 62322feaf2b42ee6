"""Inpainting: a pixel mask A = A^H = M ⊙ x, random Bernoulli masks and the Ambient further mask.

    x      (B, C, H, W) real or complex
    M      (B or 1, 1 or C, H, W) of 0/1 (a float buffer; broadcast against x)
    A x    M ⊙ x (same shape as x);  A is an orthogonal projection, so ‖A‖ = 1 when a pixel is kept.

Ambient Diffusion (docs/method.md, "Forward operators"): each sample has M ~ Bernoulli(1 − p) (each pixel missing with
probability p), and training draws a further mask M̂ = M ⊙ Bernoulli(1 − δ) ⊂ M.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> m = bernoulli_mask((1, 1, 64, 64), p_missing=0.8, generator=g)
    >>> 0.15 < float(m.mean()) < 0.25
    True
"""

from __future__ import annotations

import torch

from rsd_sci.physics.base import LinearOperator
from rsd_sci.physics.precision import promote, real_dtype_of



def bernoulli_mask(shape, p_missing: float, generator: torch.Generator | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Float 0/1 tensor of `shape`; each entry is 0 (missing) with probability p_missing.

    Draws from `generator` (and on its device unless `device` is given); density 1 − p_missing.
    """
    if not 0.0 <= p_missing < 1.0:
        raise ValueError(f"p_missing must be in [0, 1), got {p_missing}")
    if device is None:
        device = generator.device if generator is not None else "cpu"
    u = torch.rand(tuple(shape), generator=generator, device=device)
    return (u >= p_missing).float()


def further_pixel_mask(mask: torch.Tensor, delta: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """M̂ = M ⊙ Bernoulli(1 − δ): drop each kept pixel with probability δ (same shape and dtype as M)."""
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    keep = bernoulli_mask(mask.shape, delta, generator, device=mask.device)
    return mask * keep.to(mask.dtype)


class PixelMask(LinearOperator):
    """A = A^H = M ⊙ x for a fixed 0/1 mask M.

    Args:
        mask: (B or 1, 1 or C, H, W) tensor of 0/1 (bool or float), stored as a float buffer.
    """

    def __init__(self, mask: torch.Tensor):
        super().__init__()
        mask = torch.as_tensor(mask)
        if mask.dim() < 2:
            raise ValueError(f"pixel mask must be (B, C, H, W), got shape {tuple(mask.shape)}")
        self.register_buffer("mask", mask.float())

    def _apply_mask(self, t: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=t.device.type, enabled=False):
            t = promote(t)
            real = real_dtype_of(t.dtype)
            return t * self.mask.to(device=t.device, dtype=real)

    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """M ⊙ x."""
        return self._apply_mask(x)

    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """M ⊙ y (M is real and diagonal)."""
        return self._apply_mask(y)

    def further(self, generators: list[torch.Generator], delta: float) -> "PixelMask":
        """Â: M̂ = M ⊙ Bernoulli(1 − δ) (`further_pixel_mask`), sample i's drawn by generators[i].

        One generator repeated (the distillation's unkeyed draws) draws the batch in one call: a CPU
        generator gives the same numbers as row-by-row draws, and 512 calls cost more than the step."""
        mask = self.mask.cpu().expand(len(generators), *self.mask.shape[1:])
        if all(g is generators[0] for g in generators):
            return PixelMask(further_pixel_mask(mask, delta, generators[0]))
        return PixelMask(torch.cat([further_pixel_mask(mask[i:i + 1], delta, g) for i, g in enumerate(generators)]))

    def keep_measured(self, y: torch.Tensor) -> torch.Tensor:
        """Missing pixels set to zero."""
        return self._apply_mask(y)

    def extra_repr(self) -> str:
        return f"mask={tuple(self.mask.shape)}, density={float(self.mask.mean()):.3f}"
