"""Exponential moving average of a model's weights, with a half-life in images and a ramp.

After each optimiser step, every floating-point parameter is averaged

    θ_ema ← β·θ_ema + (1 − β)·θ,   β = 0.5 ** (batch / max(h, 1e-8)),
    h = min(half_life_images, ramp · images_seen)

so the EMA's memory halves every h images. The ramp (METHOD: h = min(0.5 Mimg, 0.05 × images seen))
keeps a short run from being frozen at its initial weights: after n images the EMA remembers only the
last ~5 % of them, and once 0.05·n exceeds the half-life the rule is the plain EMA. Buffers (batch-norm
statistics, fixed masks) and non-floating parameters are copied, not averaged.

Example:
    >>> import torch
    >>> model = torch.nn.Linear(1, 1, bias=False)
    >>> ema = EMA(model, half_life_images=1000, ramp=0.05)
    >>> with torch.no_grad():
    ...     _ = model.weight.fill_(1.0)
    >>> ema.update(model, images_seen=8, batch_size=8) == 0.5 ** 20   # early: h = 0.4 images
    True
    >>> abs(float(ema.module.weight) - 1.0) < 1e-5
    True
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel wrapper (or the module itself)."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.module
    return model


def ema_beta(images_seen: float, batch_size: int, half_life_images: float, ramp: float = 0.05) -> float:
    """β = 0.5 ** (batch / max(min(half_life_images, ramp · images_seen), 1e-8)).

    images_seen counts the images seen INCLUDING the batch just applied.

    >>> ema_beta(1e9, 500_000, half_life_images=500_000)   # one half-life per update
    0.5
    """
    half_life = min(float(half_life_images), float(ramp) * float(images_seen))
    return 0.5 ** (float(batch_size) / max(half_life, 1e-8))


class EMA:
    """An EMA copy of `model` (`.module`, in eval mode, no gradients), updated by `update`.

    half_life_images: the half-life in images once the ramp is over (a run's `ema_half_life_images`,
    published 0.5 Mimg);
    ramp: the fraction of the images seen used as the half-life early in training (0 disables the
    EMA's memory until the ramp is raised; use a large ramp for the plain rule).
    """

    def __init__(self, model: nn.Module, half_life_images: float, ramp: float = 0.05):
        if half_life_images < 0 or ramp < 0:
            raise ValueError(f"half_life_images and ramp must be >= 0, got {half_life_images}, {ramp}")
        self.half_life_images = float(half_life_images)
        self.ramp = float(ramp)
        self.module = copy.deepcopy(_unwrap(model)).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, images_seen: float, batch_size: int) -> float:
        """Average `model`'s current weights into the EMA; returns the β used.

        Call after each optimiser step with images_seen = images seen so far including this batch
        (e.g. (step + 1) · global batch) and batch_size = the GLOBAL batch size.
        """
        beta = ema_beta(images_seen, batch_size, self.half_life_images, self.ramp)
        source = _unwrap(model)
        ema_params = dict(self.module.named_parameters())
        for name, param in source.named_parameters():
            target = ema_params[name]
            if target.dtype.is_floating_point or target.dtype.is_complex:
                target.lerp_(param.detach().to(target.dtype), 1.0 - beta)
            else:
                target.copy_(param.detach())
        ema_buffers = dict(self.module.named_buffers())
        for name, buf in source.named_buffers():
            ema_buffers[name].copy_(buf)
        return beta

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The EMA module's state dict (what a checkpoint stores and a model export holds)."""
        return self.module.state_dict()

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Restore the EMA weights from `state_dict` (as returned by `state_dict`)."""
        self.module.load_state_dict(state_dict)
