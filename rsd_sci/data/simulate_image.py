"""One image-restoration sample: a normalised magnitude image corrupted by noise, blur, pixel masking or
down-sampling.

Images in [0, 1] are normalised by x' = 2·x − 1 (so clean data sit in [-1, 1], σ_d = 0.5). The
measurement is y = A(x') + σ_n·n, with A from the set's operator spec (Identity, Gaussian blur,
pixel mask M ~ Bernoulli(1 − p) drawn per sample, or average-pool down-sampling); for inpainting the
noise is masked too (missing pixels carry nothing).
"""

from __future__ import annotations

import numpy as np
import torch

from rsd_sci.data import noise_level
from rsd_sci.measurement import family_of

IMAGE_SCALE, IMAGE_OFFSET = 2.0, -1.0


def from_magnitude(image: np.ndarray, spec: dict, sigma_n: float | str, rng: np.random.Generator,
                   with_target: bool) -> dict:
    """Simulate a measured sample from a magnitude image (H, W) in [0, 1]."""
    x = (IMAGE_SCALE * image + IMAGE_OFFSET).astype(np.float32)[None]
    batch = {}
    if spec["corruption"] == "inpaint":
        batch["masks"] = torch.from_numpy((rng.random(x.shape) >= spec["p"]).astype(np.float32))[None]
    op = family_of(spec).operator(batch)
    y = op.A(torch.from_numpy(x)[None])
    if sigma_n != "auto" and sigma_n > 0:
        noise = torch.from_numpy(rng.standard_normal(tuple(y.shape), dtype=np.float32)) * sigma_n
        y = y + (op.A(noise) if spec["corruption"] == "inpaint" else noise)
    y = y.numpy()[0]
    out = dict(measurements=y.astype(np.float32), scale=IMAGE_SCALE, offset=IMAGE_OFFSET,
               sigma_n=float(noise_level.estimate_sigma_image(y[0])) if sigma_n == "auto" else float(sigma_n))
    if "masks" in batch:
        out["masks"] = batch["masks"].numpy()[0].astype(bool)
    if with_target:
        out["targets"] = x
    return out
