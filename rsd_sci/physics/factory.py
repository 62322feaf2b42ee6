"""Operator specs: the JSON description of a forward model, and the operator it builds for a batch.

A spec is shared by a whole measurement set (it is stored in the set's attributes and in model
metadata); the per-sample parts (masks, coil maps) travel with each sample. The families:

    {"family": "mri", "shape": [H, W], "coils": C, "mask": MaskSpec dict}
        masks (B, W) line masks or (B, H, W) 2-D masks; coil_maps (B, C, H, W) complex if C > 1
    {"family": "ct", "image_size": N, "n_angles": 180, "n_views": V, "view_kind": "sparse"}
        masks (B, n_angles) view masks
    {"family": "image", "shape": [H, W], "corruption": "noise" | "blur" | "inpaint" | "downsample",
     "blur_kernel": k, "blur_std": s, "p": p, "delta": d, "factor": f}
        masks (B, 1, H, W) pixel masks for inpainting

Example:
    >>> import torch
    >>> op = build_operator({"family": "image", "shape": [8, 8], "corruption": "downsample", "factor": 2}, {})
    >>> op.A(torch.ones(1, 1, 8, 8)).shape
    torch.Size([1, 1, 4, 4])
"""

from __future__ import annotations

from typing import Mapping

import torch

from rsd_sci.physics.base import Identity, LinearOperator

FAMILIES = ("mri", "ct", "image")
CORRUPTIONS = ("noise", "blur", "inpaint", "downsample")


def build_operator(spec: Mapping, batch: Mapping[str, torch.Tensor]) -> LinearOperator:
    """The linear operator of `spec` for one batch (per-sample masks and maps from `batch`)."""
    family = spec["family"]
    if family == "mri":
        return _mri(spec, batch)
    if family == "ct":
        return _ct(spec, batch)
    if family == "image":
        return _image(spec, batch)
    raise ValueError(f"unknown operator family {family!r} (expected one of {', '.join(FAMILIES)})")


def _mri(spec, batch):
    from rsd_sci.physics.mri import MRIOperator

    masks = torch.as_tensor(batch["masks"])
    if masks.dim() == 2:  # (B, W) line masks act on every k-space row
        masks = masks[:, None, None, :]
    elif masks.dim() == 3:  # (B, H, W)
        masks = masks[:, None]
    maps = batch.get("coil_maps") if int(spec.get("coils", 1)) > 1 else None
    return MRIOperator(masks.float(), None if maps is None else torch.as_tensor(maps))


def _ct(spec, batch):
    from rsd_sci.physics.ct import ParallelBeamCT

    masks = batch.get("masks")
    return ParallelBeamCT(int(spec["image_size"]), int(spec.get("n_angles", 180)),
                          view_mask=None if masks is None else torch.as_tensor(masks))


def _image(spec, batch):
    corruption = spec["corruption"]
    if corruption == "noise":
        return Identity()
    if corruption == "blur":
        from rsd_sci.physics.blur import GaussianBlur

        return GaussianBlur(int(spec["blur_kernel"]), float(spec["blur_std"]))
    if corruption == "inpaint":
        from rsd_sci.physics.inpaint import PixelMask

        return PixelMask(torch.as_tensor(batch["masks"]).float())
    if corruption == "downsample":
        from rsd_sci.physics.downsample import Downsample

        return Downsample(int(spec["factor"]))
    raise ValueError(f"unknown corruption {corruption!r} (expected one of {', '.join(CORRUPTIONS)})")
