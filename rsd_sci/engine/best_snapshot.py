"""Model selection by a held-out signal: keep a copy of a module's weights at the lowest value seen.

The distillation's held-out signal (a distance between the generator's synthetic measurements and real
held-out ones; no clean data) need not be monotone: on earlier tiny CPU runs it was lowest after 100
iterations and rose afterwards (docs/benchmarks.md). The exported generator is the EMA at the best
evaluation, as one selects a checkpoint by FID in the published runs, but with a signal that needs no
clean images. The snapshot is part of the training state, so a resumed run selects as a straight one.

Example:
    >>> import torch
    >>> net = torch.nn.Linear(1, 1, bias=False)
    >>> best = BestSnapshot(net)
    >>> for step, value in ((1, 0.5), (2, 0.2), (3, 0.4)):
    ...     _ = torch.nn.init.constant_(net.weight, float(step))
    ...     _ = best.offer(net, value, step)
    >>> best.step, best.value, best.module.weight.item()
    (2, 0.2, 2.0)
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn


class BestSnapshot:
    """The weights of `module` at the lowest finite value offered so far (and that value and step)."""

    def __init__(self, module: nn.Module):
        self.module = copy.deepcopy(module).eval().requires_grad_(False)
        self.value = math.inf
        self.step = 0

    @torch.no_grad()
    def offer(self, module: nn.Module, value: float, step: int) -> bool:
        """Copy `module`'s weights if `value` is finite and below the best so far; True if it was."""
        if not math.isfinite(value) or value >= self.value:
            return False
        self.module.load_state_dict(module.state_dict())
        self.value, self.step = float(value), int(step)
        return True

    def state_dict(self) -> dict:
        return {"weights": self.module.state_dict(), "value": torch.tensor(self.value, dtype=torch.float64),
                "step": torch.tensor(self.step)}

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state["weights"])
        self.value, self.step = float(state["value"]), int(state["step"])
