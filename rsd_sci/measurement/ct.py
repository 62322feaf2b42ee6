"""Parallel-beam CT, views thinned like k-space lines: Â = P_M̂·T, R̂ = FBP of the views in M̂.

    {"family": "ct", "image_size": N, "n_angles": 180, "n_views": V, "view_kind": "sparse"}
        masks (B, n_angles) view masks

R̂'s gain does not grow with the number of views; cond is a channel of ones (every sample keeps the same
number of views); the residual is weighted by the ramp filter W on the ORIGINAL views (an unfiltered
sinogram residual weights fine detail by about 1/|ω| and barely trains it). Further masks drop
`default_view_drop(n_angles, views)` views. Metrics compare attenuation with air at 0 inside the
scanned disc (`metric_view`); A-DPS steps by ζ = 1/‖A‖ (≈ 57 at 64² with 60 of 180 views).
"""

from __future__ import annotations

import numpy as np
import torch

from rsd_sci.measurement.base import Measurement
from rsd_sci.physics.base import operator_norm
from rsd_sci.physics.precision import promote


class CT(Measurement):
    kind = "ambient"
    channels = 1
    cond_channels = 1
    generator_loss_space = "full"  # inside the scanned disc: the generator's spectrum reaches the teacher's
                                   # (PSD 0.046 against 0.167 projected at 20 views; docs/method.md)
    baselines = ("fbp", "tv")
    zero_filled = "fbp"
    consistency_steps = 10        # CG steps of the generator prior's data consistency
    metric_note = "CT images as attenuation with air at 0, inside the scanned disc only. "

    def describe(self) -> str:
        op = self.spec
        return (f"CT, {op.get('n_views')} of {op.get('n_angles')} views ({op.get('view_kind')}), image "
                f"{op.get('image_size')}²")

    def operator(self, batch):
        from rsd_sci.physics.ct import ParallelBeamCT

        masks = batch.get("masks")
        return ParallelBeamCT(int(self.spec["image_size"]), int(self.spec.get("n_angles", 180)),
                              view_mask=None if masks is None else torch.as_tensor(masks))

    def metric_view(self, images: np.ndarray, offset) -> np.ndarray:
        """The attenuation with air at 0 (x' − offset: the normalised images put air at the offset, −1)
        inside the scanned disc and 0 outside it (`field_of_view`: nothing there is measured, FBP returns
        0 there); so fastMRI's data range (the target's maximum) and NMSE keep their meaning.
        offset: a scalar or one value per image (the measurement set's `offset` column)."""
        from rsd_sci.physics.ct import field_of_view

        shifted = images - np.asarray(offset, np.float32).reshape(-1, 1, 1)
        return np.where(field_of_view(images.shape[-1]), shifted, 0.0).astype(np.float32)

    def identifiable(self, f):
        """f inside the scanned disc (`field_of_view`), 0 outside it, which no view measures."""
        from rsd_sci.physics.ct import field_of_view

        return f * torch.from_numpy(field_of_view(f.shape[-1])).to(device=f.device, dtype=f.dtype)

    def default_zeta(self):
        n, y = int(self.spec["image_size"]), self.y
        return 1.0 / operator_norm(self.op, (y.shape[0], 1, n, n), device=y.device).cpu()

    def noise_shape(self):
        n = int(self.spec["image_size"])
        return (int(self.y.shape[0]), 1, n, n)

    def further(self, seed=0, generator=None, index=None):
        op_hat = self.op.further(self._generators(seed, generator, index)).to(self.y.device)
        return self.measure(self.batch, op_hat)

    def measured_power(self):
        """Mean power per detector frequency, |FFT_detector(y)|² (orthonormal) over samples and views:
        (D // 2 + 1,) float64 (unmeasured views are zero in every set compared alike)."""
        y = promote(self.y)
        return torch.fft.rfft(y.to(torch.float64), dim=-1, norm="ortho").abs().square().mean(dim=(0, 1, 2))

    def cond(self):
        y = self.y
        n = int(self.spec["image_size"])
        return torch.ones(y.shape[0], 1, n, n, device=y.device)

    def weight(self, r):
        return self.op.ramp_filter(r)

    def project(self, x_image):
        return self.op.fbp(self.op.A(x_image))

    def network_input(self):
        return self.op.fbp(self.y)
