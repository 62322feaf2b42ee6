"""One record for a trained model, teacher or generator: an EDM denoiser and how it meets its data.

Both are EDM denoisers with the teacher's network and operator: a generator is the distilled copy,
called once at σ_init. The record says how the model meets its data: its measurement family (the
network layout and the operator, `rsd_sci.measurement`) and the teacher's loss member. It sits below
every floor that takes a model (the distiller, A-DPS, the generator prior, the engine); model files are
read in one place, `rsd_sci.engine.model.load_model`.

    model = build_model(spec, network, sigma_n_max)    # a fresh teacher
    x0 = model.denoiser(x, sigma, cond)                # D(x, σ, cond) -> x0, network channels
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rsd_sci.diffusion.networks import build_backbone
from rsd_sci.diffusion.precond import EDMDenoiser
from rsd_sci.measurement import Measurement, family_of

KINDS = ("teacher", "generator")


@dataclasses.dataclass
class Model:
    """A denoiser and how it meets its data.

    kind: "teacher" | "generator"; family: the measurement family of its operator spec (bound to no batch); member: the
    teacher's loss member; meta: the file's metadata (empty for a fresh model), meta["bank"] its operator
    bank (`rsd_sci.engine.operator_bank`); path: the file it came from.
    """

    kind: str
    denoiser: EDMDenoiser
    family: Measurement
    member: str
    meta: dict = dataclasses.field(default_factory=dict)
    path: Path | None = None

    @property
    def spec(self) -> dict:
        return self.family.spec


def build_model(spec: dict, network: dict, sigma_n_max: float, kind: str = "teacher") -> Model:
    """A fresh model for data with operator `spec` (network: a preset's network keys)."""
    family = family_of(spec)
    backbone = build_backbone(network, family.channels, family.cond_channels)
    return Model(kind, EDMDenoiser(backbone), family, family.member(sigma_n_max))
