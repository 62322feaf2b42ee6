"""Cartesian MRI (measurement-domain Ambient, Aali et al. 2024): Â = M̂ ⊙ F(S_c ·), R̂ = Â^H / RSS(S).

    {"family": "mri", "shape": [H, W], "coils": C, "mask": MaskSpec dict}
        masks (B, W) line masks or (B, H, W) 2-D masks; coil_maps (B, C, H, W) complex if C > 1;
        centers like masks: the calibration region, never thinned

Complex images (B, 1, H, W) are two real network channels [Re, Im] (`rsd_sci.physics.layout`); image
noise is complex with σ per real part, Â n = M̂ ⊙ F(S_c n) with the sample's own maps S, and R̂ is the
adjoint with the maps normalised to unit RSS, R̂ k = Â^H k / RSS(S) (0 where RSS(S) ≤ 1e-6). The stored
maps (ESPIRiT with crop 0, or simulated birdcage maps) are unit RSS already, so R̂ = Â^H for our data;
dividing by the RSS keeps the input's gain right for maps that are not. Single-coil: S = 1, R̂ = Â^H.
cond: [M̂ as an image (lines broadcast over rows; a 2-D mask is its own image), ones], (B, 2, H, W).
Further masks keep the calibration region and thin the other sampled lines (or points) to acceleration
R + 1 (`rsd_sci.physics.masks.further_drop_count`).
"""

from __future__ import annotations

import torch

from rsd_sci.measurement.base import Measurement
from rsd_sci.physics.layout import channels_to_complex, complex_to_channels
from rsd_sci.physics.precision import promote

DC_STEPS_COILS = 10          # CG steps of the generator prior's data consistency, multi-coil
RSS_EPS = 1e-6                # coil-map RSS below this counts as outside the support (R̂ is 0 there)


class MRI(Measurement):
    kind = "ambient"
    channels = 2
    cond_channels = 2
    generator_loss_space = "full"  # P keeps ~13 of 64 lines: L_G on full images (docs/method.md, "Distillation")
    baselines = ("zero-filled", "cg-sense", "l1-wavelet")
    zero_filled = "zero-filled"

    @property
    def consistency_steps(self) -> int:
        """1 for single-coil data (A^H A is a projection: one CG step puts the measured lines back),
        DC_STEPS_COILS for multi-coil data."""
        return 1 if int(self.spec.get("coils", 1)) == 1 else DC_STEPS_COILS

    def describe(self) -> str:
        op, mask = self.spec, self.spec.get("mask", {})
        return (f"MRI, {op.get('coils', 1)} coil(s), image {tuple(op.get('shape', ()))}, {mask.get('kind')} mask, "
                f"R = {mask.get('acceleration')}, centre fraction {mask.get('center_fraction')}")

    def operator(self, batch):
        from rsd_sci.physics.mri import MRIOperator

        masks = torch.as_tensor(batch["masks"])
        if masks.dim() == 2:  # (B, W) line masks act on every k-space row
            masks = masks[:, None, None, :]
        elif masks.dim() == 3:  # (B, H, W)
            masks = masks[:, None]
        maps = batch.get("coil_maps") if int(self.spec.get("coils", 1)) > 1 else None
        return MRIOperator(masks.float(), None if maps is None else torch.as_tensor(maps))

    def measured_power(self):
        """Mean |y|² per k-space column (the phase-encode lines the mask keeps or drops), over samples,
        coils and rows: (W,) float64, 0 on columns no sample measures."""
        return promote(self.y).abs().to(torch.float64).square().mean(dim=(0, 1, 2))

    def to_image(self, t):
        return channels_to_complex(t)

    def to_channels(self, x):
        return complex_to_channels(x)

    def noise_shape(self):
        y = self.y
        return (y.shape[0], 2, *y.shape[-2:])

    def further(self, seed=0, generator=None, index=None):
        if "centers" not in self.batch:
            raise ValueError("MRI further masks need batch['centers'] (the calibration region, never thinned)")
        op_hat = self.op.further(self._generators(seed, generator, index), self.batch["centers"])
        return self.measure(self.batch, op_hat)

    def cond(self):
        y = self.y
        pattern = self.op.mask.to(device=y.device, dtype=torch.float32).expand(y.shape[0], 1, *y.shape[-2:])
        return torch.cat([pattern, torch.ones_like(pattern)], dim=1)

    def _inverse_rss(self) -> torch.Tensor | None:
        """1 / RSS(S) (B|1, 1, H, W), 0 outside the maps' support; None for single-coil (S = 1)."""
        maps = self.op.smaps  # the folded maps differ from S by a ±1 checkerboard: the same RSS
        if maps is None:
            return None
        rss = torch.linalg.vector_norm(maps, dim=1, keepdim=True)
        return torch.where(rss > RSS_EPS, 1.0 / rss.clamp_min(RSS_EPS), torch.zeros_like(rss))

    def _reconstruct(self, image: torch.Tensor) -> torch.Tensor:
        inverse = self._inverse_rss()
        return complex_to_channels(image if inverse is None else image * inverse.to(image.device))

    def project(self, x_image):
        return self._reconstruct(self.op.normal(x_image))

    def network_input(self):
        return self._reconstruct(self.op.A_adjoint(self.y))
