"""A `Measurement` from arrays a user holds: k-space with its mask and coil maps, a sinogram with its
views, a corrupted image. Each builds the family's operator spec and batch and calls the family's own
`measure`, exactly as a measurement-set batch is measured.

Layouts (docs/file-formats.md):

    mri_measurement     kspace complex (B, C, H, W) (C = 1: single-coil); mask (W,) or (B, W) lines, or
                        (B, H, W) 2-D masks; coil_maps complex (B, C, H, W) or (C, H, W)
    ct_measurement      sinogram real (B, 1, n_angles, N) for N × N images; view_mask (B, n_angles) or
                        (n_angles,), None: every view
    image_measurement   y real (B, 1, h, w); mask (B, 1, H, W) or (H, W) for inpainting

Arrays may be numpy or torch; the batch stays on the arrays' device (numpy: the CPU). sigma_n is the
noise std per real component, a number or one per sample (B,); `index` keys every random draw of the
methods that take the measurement (default 0..B−1). A learned model expects the units of its training
data (docs/file-formats.md, "Units and normalisation"); the classical baselines take any units.

Example:
    >>> import torch
    >>> mask = torch.zeros(8); mask[2:6] = 1
    >>> m = mri_measurement(torch.ones(2, 1, 8, 8, dtype=torch.complex64), mask)
    >>> m.name, m.A_adjoint(m.y).shape, m.batch["centers"].shape
    ('mri', torch.Size([2, 1, 8, 8]), torch.Size([2, 8]))
"""

from __future__ import annotations

import numpy as np
import torch

from rsd_sci.measurement import Measurement, family_of


def _per_sample(values, b: int, sample_dims: int, dtype=None) -> torch.Tensor:
    """values with `sample_dims` dims per sample as (B, ...): one shared array is repeated B times."""
    t = torch.as_tensor(values, dtype=dtype)
    if t.dim() == sample_dims:
        t = t.expand(b, *t.shape)
    if t.shape[0] != b:
        raise ValueError(f"expected {b} per-sample arrays, got shape {tuple(t.shape)}")
    return t


def _batch(y: torch.Tensor, sigma_n, index, **parts) -> dict:
    """The batch dict every family measures: y, σ_n (B,), index (B,) and the given parts."""
    b = y.shape[0]
    sigma = torch.as_tensor(sigma_n, dtype=torch.float32).reshape(-1).expand(b).to(y.device)
    keys = torch.arange(b) if index is None else torch.as_tensor(index, dtype=torch.int64).reshape(b)
    return dict(y=y, sigma_n=sigma, index=keys.to(y.device), **{k: v for k, v in parts.items() if v is not None})


def mri_measurement(kspace, mask, coil_maps=None, center=None, sigma_n=0.0, index=None) -> Measurement:
    """Cartesian MRI: A x = M ⊙ F(S_c x) (single-coil S = 1), as `rsd_sci.physics.mri.MRIOperator`.

    kspace: complex (B, C, H, W), zero where not sampled; mask: (W,) / (B, W) sampled lines or (B, H, W)
    sampled points; coil_maps: complex (B, C, H, W) / (C, H, W), needed when C > 1; center: the
    calibration region, shaped like the mask, which Ambient teachers never thin (default for line
    masks: the run of sampled lines through column W // 2; 2-D masks: none, so A-DPS and the generator
    prior need it given).
    """
    from rsd_sci.data.simulate_mri import center_lines_of

    y = torch.as_tensor(kspace)
    if not y.is_complex() or y.dim() != 4:
        raise ValueError(f"kspace must be complex (B, coils, H, W), got {y.dtype} {tuple(y.shape)}")
    b, coils, h, w = y.shape
    masks = _per_sample(mask, b, 1, torch.bool).to(y.device)
    if center is None and masks.dim() == 2:   # lines
        center = np.stack([center_lines_of(row) for row in masks.cpu().numpy()])
    centers = None if center is None else _per_sample(center, b, masks.dim() - 1, torch.bool).to(y.device)
    maps = None
    if coils > 1:
        if coil_maps is None:
            raise ValueError(f"{coils}-coil k-space needs coil_maps (B, {coils}, H, W)")
        maps = _per_sample(coil_maps, b, 3).to(y.device)
    spec = dict(family="mri", shape=[h, w], coils=coils)
    return family_of(spec).measure(_batch(y, sigma_n, index, masks=masks, centers=centers, coil_maps=maps))


def ct_measurement(sinogram, view_mask=None, sigma_n=0.0, index=None) -> Measurement:
    """Parallel-beam CT of N × N images over n_angles views in [0°, 180°), as
    `rsd_sci.physics.ct.ParallelBeamCT`: sinogram real (B, 1, n_angles, N), zero on the views not
    measured; view_mask bool (B, n_angles) / (n_angles,) of the measured views (None: all)."""
    y = torch.as_tensor(sinogram, dtype=torch.float32)
    if y.dim() != 4 or y.shape[1] != 1:
        raise ValueError(f"sinogram must be real (B, 1, n_angles, detectors), got {tuple(y.shape)}")
    b, _, n_angles, n = y.shape
    views = torch.ones(n_angles, dtype=torch.bool) if view_mask is None else view_mask
    masks = _per_sample(views, b, 1, torch.bool).to(y.device)
    spec = dict(family="ct", image_size=n, n_angles=n_angles, n_views=int(masks[0].sum()))
    return family_of(spec).measure(_batch(y, sigma_n, index, masks=masks))


def image_measurement(y, corruption: str, mask=None, sigma_n=0.0, index=None, blur_kernel: int | None = None,
                      blur_std: float | None = None, factor: int | None = None, delta: float | None = None
                      ) -> Measurement:
    """An image corruption: "noise" (A = I), "blur" (a Gaussian blur_kernel × blur_kernel kernel of std
    blur_std), "downsample" (factor × factor block means) or "inpaint" (A = M ⊙ ·, mask bool
    (B, 1, H, W) / (H, W), 1 where measured; delta: the Ambient teacher's further drop rate).

    y: real (B, 1, h, w), the corrupted images (down-sampling: h = H / factor). Settings left None take
    `rsd-sci data make`'s defaults (`rsd_sci.data.make.MakeSpec`).
    """
    from rsd_sci.data.make import MakeSpec

    y = torch.as_tensor(y, dtype=torch.float32)
    if y.dim() != 4 or y.shape[1] != 1:
        raise ValueError(f"images must be real (B, 1, h, w), got {tuple(y.shape)}")
    given = dict(blur_kernel=blur_kernel, blur_std=blur_std, factor=factor, delta=delta)
    settings = {k: getattr(MakeSpec, k) if v is None else v for k, v in given.items()}
    scale = settings["factor"] if corruption == "downsample" else 1
    spec = dict(family="image", shape=[y.shape[-2] * scale, y.shape[-1] * scale], corruption=corruption, **settings)
    family = family_of(spec)   # a ValueError for an unknown corruption, before the mask is read
    masks = None
    if corruption == "inpaint":
        if mask is None:
            raise ValueError("inpainting needs the mask of measured pixels, (B, 1, H, W) or (H, W)")
        mask = torch.as_tensor(mask)
        masks = _per_sample(mask[None] if mask.dim() == 2 else mask, y.shape[0], 3, torch.bool).to(y.device)
    return family.measure(_batch(y, sigma_n, index, masks=masks))
