"""Image-domain families: noise, blur and down-sampling (the data kind) and pixel masks (inpainting).

    {"family": "image", "shape": [H, W], "corruption": "noise" | "blur" | "inpaint" | "downsample",
     "blur_kernel": k, "blur_std": s, "p": p, "delta": d, "factor": f}
        masks (B, 1, H, W) pixel masks for inpainting
"""

from __future__ import annotations

import numpy as np
import torch

from rsd_sci.measurement.base import Measurement
from rsd_sci.physics.base import Identity
from rsd_sci.physics.precision import promote

DEFAULT_DELTA = 0.1           # pixel further-mask drop rate when the spec has none (docs/method.md: δ ≈ 0.1)
DATA_CORRUPTIONS = ("noise", "blur", "downsample")


class DataSpace(Measurement):
    """Noise, blur, down-sampling: the teacher models the corrupted images y (B, 1, h, w) themselves.

    Nothing is thinned (further returns the batch itself), project(x) = A x (the corrupted image of x),
    network_input() = y, reproject(f) = f (a denoiser output already lives in the data space), no
    conditioning, and the residual is the plain per-element mean ‖d − y‖² / numel(y). The member is
    Ambient-Tweedie for noise, and for blur and down-sampling whenever some σ_n > 0, else plain.
    """

    kind = "data"   # one channel, no conditioning (the base's defaults)
    baselines = ("corrupted",)
    zero_filled = "corrupted"

    def describe(self) -> str:
        return f"image, corruption {self.spec.get('corruption')}"

    @property
    def teacher_is_clean_prior(self) -> bool:
        """Only the noise teacher models clean images (Ambient-Tweedie); blur and down-sampling teachers
        model the corrupted images A x."""
        return self.spec["corruption"] == "noise"

    @property
    def consistency_steps(self) -> int:
        """1 for down-sampling (A^T A = f⁻²·P with P the block-mean projection: one CG step makes the
        block means y's and keeps the generator's detail within each block), 0 for noise and blur (a
        solve would fit the noise or the blur back in)."""
        return 1 if self.spec["corruption"] == "downsample" else 0

    def metric_view(self, images: np.ndarray, offset) -> np.ndarray:
        """Images smaller than the clean size (down-sampling: the data and the teacher's samples)
        up-sampled to it by pixel repetition, as `Downsample.R`, so they are compared on one grid."""
        shape = [int(n) for n in self.spec.get("shape", [])]
        h, w = images.shape[-2:]
        if not shape or (h, w) == tuple(shape) or shape[0] % h or shape[1] % w:
            return images
        return images.repeat(shape[0] // h, axis=-2).repeat(shape[1] // w, axis=-1)

    def operator(self, batch):
        corruption = self.spec["corruption"]
        if corruption == "noise":
            return Identity()
        if corruption == "blur":
            from rsd_sci.physics.blur import GaussianBlur

            return GaussianBlur(int(self.spec["blur_kernel"]), float(self.spec["blur_std"]))
        from rsd_sci.physics.downsample import Downsample

        return Downsample(int(self.spec["factor"]))

    def member(self, sigma_n) -> str:
        if self.spec["corruption"] == "noise":
            return "tweedie"
        # on the CPU explicitly: check_model_file builds models under torch.device("meta")
        noisy = torch.as_tensor(sigma_n, dtype=torch.float64, device="cpu") > 0
        return "tweedie" if bool(noisy.any()) else "plain"

    def further(self, seed=0, generator=None, index=None):
        return self

    def project(self, x_image):
        return promote(self.op.A(x_image))

    def network_input(self):
        return promote(self.y)

    def reproject(self, f):
        return f

    def residual(self, d_image):   # every entry measured: the mean
        return (promote(d_image) - promote(self.y)).square().flatten(1).mean(dim=1)

    def output_misfit(self, x0):
        return self.to_image(x0) - promote(self.y)

    def generator_shape(self):
        """y's shape with the clean size spec["shape"] as its trailing dims ((B, 1, H, W) for images):
        for down-sampling the generator runs the teacher's convolutional weights at full resolution."""
        y, shape = self.y, [int(n) for n in self.spec.get("shape", [])]
        return (*y.shape[:y.dim() - len(shape)], *shape) if shape else tuple(y.shape)

    def generator_input(self, z_image):
        return promote(z_image), None


class PixelMasks(Measurement):
    """Inpainting (Ambient Diffusion, Daras et al.): A = M ⊙ ·, Â = M̂ ⊙ ·, M̂ = M ⊙ Bernoulli(1 − δ).

    Network image M̂ ⊙ (y + σ n) (y = M ⊙ (x + noise), so M̂ ⊙ y = M̂ ⊙ (x + noise)), cond M̂ (mask's
    shape, e.g. (B, 1, H, W); (B, D) for vector data), residual ‖M ⊙ (D − y)‖² / |M|.
    """

    kind = "ambient"
    channels = 1
    cond_channels = 1
    baselines = ("corrupted",)
    zero_filled = "corrupted"
    consistency_steps = 1         # A^H A = M is a projection: the measured pixels put back

    def describe(self) -> str:
        return f"image, corruption {self.spec.get('corruption')}"

    @property
    def delta(self) -> float:
        return float(self.spec.get("delta", DEFAULT_DELTA))

    def operator(self, batch):
        from rsd_sci.physics.inpaint import PixelMask

        return PixelMask(torch.as_tensor(batch["masks"]).float())

    def further(self, seed=0, generator=None, index=None):
        op_hat = self.op.further(self._generators(seed, generator, index), self.delta).to(self.y.device)
        return self.measure(self.batch, op_hat)

    def cond(self):
        y = self.y
        mask = self.op.mask.to(device=y.device, dtype=torch.float32)
        return mask.expand(int(y.shape[0]), *mask.shape[1:])

    def project(self, x_image):
        return self.op.A(x_image)

    def network_input(self):
        return self.op.A(self.y)
