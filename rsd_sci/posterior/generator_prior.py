"""Reconstruction with the one-step generator as the prior (METHOD.md, Sampling: Posterior): optimise the
generator's INPUT noise z for data consistency, one network call per iteration.

The generator maps noise to a clean image in one call, as in `rsd_sci.distill.distiller.generate`:

    x_g(z) = G(z_in(z), σ_init, c),   z_in, c = space.generator_input(Â, σ_init·to_image(z), batch)

i.e. z_in = R̂·Â(σ_init·z) with Â's channels for Ambient spaces (ONE fixed further operator
Â = space.further(op, batch, seed), drawn from the measurement's own operator, for the whole run) and
z_in = σ_init·z for data spaces. With A the measurement's operator, P_M its measured entries (|M| real
entries per sample, complex entries counted twice) and z of dim(z) entries per sample, Adam (lr)
minimises per sample

    L(z) = ‖P_M(A·x_g(z) − y)‖² / |M|  +  lam·‖z‖² / dim(z)          (a Gaussian prior on z)

from z_0 keyed N(0, I), and returns x_g(z) at the last iterate, (B, C, H, W) in network channels
(`iters=0` returns x_g(z_0)). For data spaces A is the corruption (blur, down-sampling, or I): the
generator's images are clean.

lam: the MAP objective ‖P_M(A x_g − y)‖²/(2σ_n²) + ‖z‖²/2 is this one with lam = σ_n²·dim(z)/|M|, tiny for
nearly noiseless data; larger values keep z typical. On the tiny MRI demo generator (64², R = 4, 4 test
slices, 200 iterations, lr 0.05) NMSE was 0.071/0.112/0.075/0.082 at lam = 1, 0.060/0.096/0.055/0.060
at lam = 0.1 (the default) and 0.063/0.098/0.052/0.067 at lam = 0.01 (zero-filled 0.054/0.073/0.059/0.071).

`restarts` = R > 1 runs from R different keyed z_0 and returns (R, B, C, H, W). The R results are a
SPREAD of local optima of one objective, NOT posterior samples: do not read their variance as
posterior uncertainty.

Example (a linear "generator" on 2×2 images, A = I):
    >>> import torch, types
    >>> from rsd_sci.diffusion.network_space import network_space
    >>> spec = {"family": "image", "shape": [2, 2], "corruption": "noise"}
    >>> G = torch.nn.Conv2d(1, 1, 1)
    >>> model = types.SimpleNamespace(denoiser=lambda x, sigma, cond: G(x), space=network_space(spec), spec=spec)
    >>> batch = {"y": torch.ones(1, 1, 2, 2), "index": torch.tensor([0])}
    >>> generator_prior(model, batch, iters=5, restarts=2).shape
    torch.Size([2, 1, 1, 2, 2])
"""

from __future__ import annotations

from typing import Callable, Mapping

import torch

from rsd_sci.distill.losses import SIGMA_INIT
from rsd_sci.engine.keyed_random import keyed_randn
from rsd_sci.physics.factory import build_operator
from rsd_sci.physics.precision import promote

GP_STREAM = 0x4750  # ("GP") keyed-random stream of the starting noise; the restart is the key's step


def _sum_squares(t: torch.Tensor) -> torch.Tensor:
    """Σ |t|² per sample (complex: real and imaginary parts), (B,)."""
    t = torch.view_as_real(t) if t.is_complex() else t
    return t.square().flatten(1).sum(dim=1)


class GeneratorObjective:
    """x_g(z) and L(z) for one batch: the operator, the fixed Â and its channels are built once."""

    def __init__(self, model, batch: Mapping[str, torch.Tensor], lam: float, seed: int, sigma_init: float):
        self.G, self.space, self.batch = model.denoiser, model.space, batch
        self.lam, self.sigma_init = float(lam), float(sigma_init)
        self.y = promote(batch["y"])
        self.op = build_operator(model.spec, batch)
        self.op_in = self.space.further(self.op, batch, seed) if self.space.kind == "ambient" else self.op
        count = self.op.keep_measured(torch.ones_like(self.y.real if self.y.is_complex() else self.y))
        self.measured = (count != 0).flatten(1).sum(dim=1).float() * (2.0 if self.y.is_complex() else 1.0)

    def shape(self) -> tuple[int, ...]:
        """The generator's noise / output shape, (B, C, H, W)."""
        return tuple(self.space.generator_shape(self.batch))

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        """x_g(z) in network channels, (B, C, H, W): one generator call."""
        z_in, cond = self.space.generator_input(self.op_in, self.sigma_init * self.space.to_image(z), self.batch)
        return self.G(z_in, torch.full((z.shape[0],), self.sigma_init, device=z.device), cond)

    def data_term(self, x_g: torch.Tensor) -> torch.Tensor:
        """‖P_M(A·x_g − y)‖² / |M| per sample, (B,)."""
        r = self.op.keep_measured(self.op.A(self.space.to_image(x_g)) - self.y)
        return _sum_squares(r) / self.measured.clamp_min(1.0)

    def prior_term(self, z: torch.Tensor) -> torch.Tensor:
        """lam·‖z‖² / dim(z) per sample, (B,)."""
        return self.lam * z.square().flatten(1).mean(dim=1)


def generator_prior(model, batch: Mapping[str, torch.Tensor], iters: int = 200,
                    lr: float = 0.05,                # Adam's rate on z
                    lam: float = 0.1,                # weight of the Gaussian prior on z
                    seed: int = 0,
                    restarts: int = 1,               # R keyed starting points: a spread, not samples
                    progress: Callable[[int, int], None] | None = None,
                    sigma_init: float = SIGMA_INIT,  # the generator's input level (meta["sigma_init"])
                    ) -> torch.Tensor:
    """Generator-prior reconstructions of batch["y"] (see the module docstring).

    model: the generator's Teacher-like struct (`load_generator(path)[0]`: .denoiser G, .space, .spec);
    batch: y, index and the operator's masks / maps. Returns (B, C, H, W) network channels, or
    (R, B, C, H, W) for restarts = R > 1. `progress(i, iters·R)` after every iteration.
    """
    if restarts < 1 or iters < 0:
        raise ValueError(f"need restarts ≥ 1 and iters ≥ 0, got {restarts}, {iters}")
    objective = GeneratorObjective(model, batch, lam, seed, sigma_init)
    keys = batch["index"].cpu()
    device = objective.y.device
    results = []
    for restart in range(restarts):
        z = keyed_randn(keys, objective.shape()[1:], seed, restart, GP_STREAM).to(device).requires_grad_(True)
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
            results.append(objective.generate(z.detach()))
    return results[0] if restarts == 1 else torch.stack(results)
