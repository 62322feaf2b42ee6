"""The measurement model of each operator family (`base.py` says what it holds); `family_of` is the one
place an operator spec's family is named."""

from __future__ import annotations

from typing import Mapping

from rsd_sci.measurement.base import MEMBERS, Family, Measurement

FAMILIES = ("mri", "ct", "image")
CORRUPTIONS = ("noise", "blur", "inpaint", "downsample")

__all__ = ["CORRUPTIONS", "FAMILIES", "MEMBERS", "Family", "Measurement", "baselines_of", "family_of"]


def family_of(spec: Mapping) -> Family:
    """The family of an operator spec: mri, ct, image/inpaint (pixel masks) or image/noise|blur|downsample
    (the data kind); ValueError for any other."""
    family = spec.get("family")
    if family == "mri":
        from rsd_sci.measurement.mri import MRI

        return MRI(spec)
    if family == "ct":
        from rsd_sci.measurement.ct import CT

        return CT(spec)
    if family == "image":
        from rsd_sci.measurement.image import DATA_CORRUPTIONS, DataSpace, PixelMasks

        corruption = spec.get("corruption")
        if corruption == "inpaint":
            return PixelMasks(spec)
        if corruption in DATA_CORRUPTIONS:
            return DataSpace(spec)
        raise ValueError(f"unknown corruption {corruption!r} (expected one of {', '.join(CORRUPTIONS)})")
    raise ValueError(f"unknown operator family {family!r} (expected one of {', '.join(FAMILIES)})")


def baselines_of(family: str) -> tuple[str, ...]:
    """The classical reconstruction methods that fit data of a family named by its spec's "family"
    (before any data are read): MRI's and CT's; none for image data or an unknown name."""
    if family == "mri":
        from rsd_sci.measurement.mri import MRI

        return MRI.baselines
    if family == "ct":
        from rsd_sci.measurement.ct import CT

        return CT.baselines
    return ()
