"""Where the distillation's random numbers come from: keyed per sample (training) or one generator (tests).

Every draw of an iteration (the generator's noise z, measurement noise, σ, t, fresh further operators)
goes through one object with three methods, so the same distillation code serves the training engine,
where 1 and N processes must agree, and the vector theory check, where speed matters:

    normal(shape, stream)           (B, *shape) standard normal, float32
    uniform(shape, stream)          (B, *shape) U[0, 1)
    further(m, which)               a fresh Ambient further operator per sample (the training density)

`KeyedDraws` keys every row by (seed, step, key_b, stream) with `rsd_sci.keyed_random` (the
keys are the iteration's global sample keys, never training indices, so the draws are fresh);
`GeneratorDraws` draws whole batches from one `torch.Generator` (fast; not rank invariant).

Example:
    >>> import torch
    >>> d = KeyedDraws(torch.tensor([4, 9]), seed=0, step=3)
    >>> torch.equal(d.normal((2,), 1)[1], KeyedDraws(torch.tensor([9]), seed=0, step=3).normal((2,), 1)[0])
    True
"""

from __future__ import annotations

import torch

from rsd_sci.keyed_random import Stream, key_seed, keyed_rand, keyed_randn


class KeyedDraws:
    """Draws keyed by (seed, step, key, stream): the same numbers for a key on any rank or batch.

    keys: (B,) int64 global keys of this iteration's samples (e.g. step·B + b).
    """

    def __init__(self, keys: torch.Tensor, seed: int, step: int):
        self.keys, self.seed, self.step = keys, int(seed), int(step)
        self.device = keys.device

    def normal(self, shape: tuple[int, ...], stream: int) -> torch.Tensor:
        return keyed_randn(self.keys.cpu(), tuple(shape), self.seed, self.step, stream).to(self.device)

    def uniform(self, shape: tuple[int, ...], stream: int) -> torch.Tensor:
        return keyed_rand(self.keys.cpu(), tuple(shape), self.seed, self.step, stream).to(self.device)

    def further(self, m, which: int = 0):
        """m with fresh further masks through the family's per-index rule, the index a 63-bit hash of
        (seed, step, key, Stream.FRESH_FURTHER, which): never a training sample's index, fresh at every
        step (which: a `rsd_sci.keyed_random.FurtherDraw`)."""
        index = torch.tensor([key_seed(self.seed, self.step, int(k), Stream.FRESH_FURTHER, which)
                              for k in self.keys.tolist()], dtype=torch.int64)
        return m.further(self.seed, index=index)


class GeneratorDraws:
    """Whole-batch draws from one CPU generator (moved to `device`); B = batch size."""

    def __init__(self, batch_size: int, generator: torch.Generator, device: torch.device | str = "cpu"):
        self.batch_size, self.generator, self.device = int(batch_size), generator, torch.device(device)

    def normal(self, shape: tuple[int, ...], stream: int) -> torch.Tensor:
        return torch.randn((self.batch_size, *shape), generator=self.generator).to(self.device)

    def uniform(self, shape: tuple[int, ...], stream: int) -> torch.Tensor:
        return torch.rand((self.batch_size, *shape), generator=self.generator).to(self.device)

    def further(self, m, which: int = 0):
        return m.further(0, generator=self.generator)
