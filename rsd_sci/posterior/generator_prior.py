"""Reconstruction with the one-step generator as the prior (docs/method.md, Phase 1: Posterior): optimise the
generator's INPUT noise z for data consistency, one network call per iteration.

The generator maps noise to a clean image in one call, as in `rsd_sci.distill.distiller.generate`:

    x_g(z) = G(z_in(z), σ_init, c),   z_in, c = m_hat.generator_input(σ_init·to_image(z))

i.e. z_in = R̂·Â(σ_init·z) with Â's channels for Ambient families (ONE fixed further operator
Â = m.further(seed), drawn from the measurement's own operator, for the whole run) and z_in = σ_init·z
for the data kind. With A the measurement's operator, P_M its measured entries (|M| real
entries per sample, complex entries counted twice) and z of dim(z) entries per sample, Adam (lr)
minimises per sample

    L(z) = ‖P_M(A·x_g(z) − y)‖² / |M|  +  lam·‖z‖² / dim(z)          (a Gaussian prior on z)

from z_0 keyed N(0, I), then finishes with data consistency: `dc_steps` conjugate-gradient steps on
A^H A x = A^H y from x_g(z) (`rsd_sci.posterior.data_consistency`; default the family's
`consistency_steps`: 1 for single-coil MRI, pixel masks and down-sampling, where it puts the measured
rows (block means) back exactly, 10 for multi-coil MRI and CT, 0 for noise and blur), and returns the
result, (B, C, H, W) in network channels (`iters=0` starts from x_g(z_0)). Without the last step the
result could never leave the generator's range. For noise and blur A is I or the blur: the generator's
images are clean, and a solve would fit the noise or the blur back in.

lam: the MAP objective ‖P_M(A x_g − y)‖²/(2σ_n²) + ‖z‖²/2 is this one with lam = σ_n²·dim(z)/|M|, tiny for
nearly noiseless data; larger values keep z typical (the default's measurements: docs/method.md).

`restarts` = R > 1 runs from R different keyed z_0 and returns (R, B, C, H, W). The R results are a
SPREAD of local optima of one objective, NOT posterior samples: do not read their variance as
posterior uncertainty.

Example (a linear "generator" on 2×2 images, A = I):
    >>> import torch, types
    >>> from rsd_sci.measurement import family_of
    >>> family = family_of({"family": "image", "shape": [2, 2], "corruption": "noise"})
    >>> G = torch.nn.Conv2d(1, 1, 1)
    >>> model = types.SimpleNamespace(denoiser=lambda x, sigma, cond: G(x), family=family)
    >>> m = family.measure({"y": torch.ones(1, 1, 2, 2), "index": torch.tensor([0])})
    >>> generator_prior(model, m, iters=5, restarts=2).shape
    torch.Size([2, 1, 1, 2, 2])
"""

from __future__ import annotations

from typing import Callable

import torch

from rsd_sci.distill.losses import SIGMA_INIT
from rsd_sci.keyed_random import Stream, keyed_randn
from rsd_sci.measurement import Measurement
from rsd_sci.posterior.data_consistency import conjugate_gradient


class GeneratorObjective:
    """x_g(z) and L(z) for one batch m: the fixed Â and its channels are drawn once."""

    def __init__(self, model, m: Measurement, lam: float, seed: int, sigma_init: float):
        self.G, self.m = model.denoiser, m
        self.lam, self.sigma_init = float(lam), float(sigma_init)
        self.m_in = m.further(seed)

    def shape(self) -> tuple[int, ...]:
        """The generator's noise / output shape, (B, C, H, W)."""
        return tuple(self.m.generator_shape())

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """x_g(z) in network channels, (B, C, H, W): one generator call."""
        z_in, cond = self.m_in.generator_input(self.sigma_init * self.m.to_image(z))
        return self.G(z_in, torch.full((z.shape[0],), self.sigma_init, device=z.device), cond)

    def finish(self, x_g: torch.Tensor, dc_steps: int) -> torch.Tensor:
        """x_g after `dc_steps` CG steps towards A x = y, network channels."""
        if dc_steps == 0:
            return x_g
        return self.m.to_channels(conjugate_gradient(self.m, self.m.to_image(x_g.float()), dc_steps))

    def data_term(self, x_g: torch.Tensor) -> torch.Tensor:
        """‖P_M(A·x_g − y)‖² / |M| per sample, (B,)."""
        return self.m.consistency(self.m.to_image(x_g))

    def prior_term(self, z: torch.Tensor) -> torch.Tensor:
        """lam·‖z‖² / dim(z) per sample, (B,)."""
        return self.lam * z.square().flatten(1).mean(dim=1)


def generator_prior(model, m: Measurement, iters: int = 200,
                    lr: float = 0.05,                # Adam's rate on z
                    lam: float = 0.1,                # weight of the Gaussian prior on z
                    seed: int = 0,
                    restarts: int = 1,               # R keyed starting points: a spread, not samples
                    progress: Callable[[int, int], None] | None = None,
                    sigma_init: float = SIGMA_INIT,  # the generator's input level (meta["sigma_init"])
                    dc_steps: int | None = None,     # CG steps of the finish (None: the family's)
                    ) -> torch.Tensor:
    """Generator-prior reconstructions of m.y (see the module docstring).

    model: the generator (`rsd_sci.diffusion.model.Model`, or any object with .denoiser G); m: the batch as
    a `Measurement` (y, index, the operator). Returns (B, C, H, W) network channels, or
    (R, B, C, H, W) for restarts = R > 1. `progress(i, iters·R)` after every iteration.
    """
    if restarts < 1 or iters < 0:
        raise ValueError(f"need restarts ≥ 1 and iters ≥ 0, got {restarts}, {iters}")
    objective = GeneratorObjective(model, m, lam, seed, sigma_init)
    dc_steps = m.consistency_steps if dc_steps is None else int(dc_steps)
    keys = m.index.cpu()
    device = m.y.device
    results = []
    for restart in range(restarts):
        z = keyed_randn(keys, objective.shape()[1:], seed, restart, Stream.PRIOR_START).to(device).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=lr)
        for i in range(iters):
            with torch.enable_grad():
                loss = objective.data_term(objective.generate(z)) + objective.prior_term(z)
                optimizer.zero_grad(set_to_none=True)
                loss.sum().backward(inputs=[z])  # a sum: each sample's z sees its own loss only
            optimizer.step()
            if progress is not None:
                progress(restart * iters + i + 1, restarts * iters)
        with torch.no_grad():
            results.append(objective.finish(objective.generate(z.detach()), dc_steps))
    return results[0] if restarts == 1 else torch.stack(results)
