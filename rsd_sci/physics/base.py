"""The operator protocol every forward model follows, and composition.

A linear operator A maps an image x to a measurement y = A(x). Each operator is an `nn.Module` whose
parameters (masks, coil maps, kernels, view sets) are buffers, so `.to(device)` moves it and a batch
can carry one operator per sample (buffers with a leading batch dimension).

    A(x)          forward model
    A_adjoint(y)  exact adjoint: <A x, y> = <x, A^H y>
    normal(x)     A^H A x
    R(y)          a fixed linear reconstruction (adjoint by default; FBP for CT)
    further(gens) row-subsampled operators (MRI lines, CT views, pixel masks): Â = P_M̂·T with a further
                  sub-mask M̂ ⊂ M for the Ambient loss, sample i's drawn from gens[i] (B CPU generators,
                  the same one repeated to draw the rows in turn)

Noise is not part of a linear operator: a `Corruption` pairs an operator with a noise model, so
"blur then noise" is `Corruption(GaussianBlur(...), GaussianNoise(0.1))` with no special case; noise
lands only on measured entries (`keep_measured`: sampled lines, views, pixels).

Example:
    >>> import torch
    >>> from rsd_sci.physics.base import Identity, Scale
    >>> op = Scale(2.0) @ Identity()
    >>> op.A(torch.ones(1, 1, 2, 2)).sum().item()
    8.0
"""

from __future__ import annotations

import abc
from typing import Protocol

import torch
from torch import nn

from rsd_sci.physics.broadcast import per_sample


class LinearOperator(nn.Module, metaclass=abc.ABCMeta):
    """Base class: subclasses implement `A` and `A_adjoint`; the rest follows."""

    @abc.abstractmethod
    def A(self, x: torch.Tensor) -> torch.Tensor:  # noqa: N802 (the maths' name)
        """Forward model."""

    @abc.abstractmethod
    def A_adjoint(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Exact adjoint of `A`."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """A^H A x."""
        return self.A_adjoint(self.A(x))

    def R(self, y: torch.Tensor) -> torch.Tensor:  # noqa: N802
        """Fixed linear reconstruction; the adjoint unless an operator has a better one."""
        return self.A_adjoint(y)

    def keep_measured(self, y: torch.Tensor) -> torch.Tensor:
        """Zero the entries of a measurement-shaped y that this operator never measures (unsampled
        k-space lines, views, pixels), so noise added after A stays where data are. Identity here."""
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.A(x)

    def __matmul__(self, other: "LinearOperator") -> "Composed":
        return Composed(self, other)


class Composed(LinearOperator):
    """(outer ∘ inner)(x) = outer(inner(x)); adjoint inner^H(outer^H(y))."""

    def __init__(self, outer: LinearOperator, inner: LinearOperator):
        super().__init__()
        self.outer = outer
        self.inner = inner

    def A(self, x):  # noqa: N802
        return self.outer.A(self.inner.A(x))

    def A_adjoint(self, y):  # noqa: N802
        return self.inner.A_adjoint(self.outer.A_adjoint(y))

    def keep_measured(self, y):
        return self.outer.keep_measured(y)


class Identity(LinearOperator):
    """A = I (denoising: DSD's setting)."""

    def A(self, x):  # noqa: N802
        return x

    def A_adjoint(self, y):  # noqa: N802
        return y


class Scale(LinearOperator):
    """A = c·I for a real scalar c (used in tests and for unit changes)."""

    def __init__(self, c: float):
        super().__init__()
        self.c = float(c)

    def A(self, x):  # noqa: N802
        return self.c * x

    def A_adjoint(self, y):  # noqa: N802
        return self.c * y


POWER_ITERS = 20   # power iterations for ‖A‖ (from the all-ones image, near the top eigenvector)


def operator_norm(op: LinearOperator, shape: tuple[int, ...], iters: int = POWER_ITERS, device=None) -> torch.Tensor:
    """‖A‖ per sample by power iteration on A^T A from the all-ones real image of `shape`, (B,) float."""
    v = torch.ones(shape, device=device)
    norm = torch.ones(shape[0], device=device)
    for _ in range(iters):
        w = op.normal(v)
        norm = w.flatten(1).norm(dim=1).clamp_min(1e-12)
        v = w / per_sample(norm, w)
    return norm.sqrt()


class NoiseModel(Protocol):
    """Adds measurement noise: `noise(y, generator) -> y + n`."""

    def __call__(self, y: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor: ...


class Corruption(nn.Module):
    """A measurement model: y = noise(A(x)).

    Args:
        operator: the linear forward model A.
        noise: a noise model (see `rsd_sci.physics.noise`), or None for noiseless data.
    """

    def __init__(self, operator: LinearOperator, noise: NoiseModel | None = None):
        super().__init__()
        self.operator = operator
        self.noise = noise

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        y = self.operator.A(x)
        return y if self.noise is None else self.operator.keep_measured(self.noise(y, generator))
