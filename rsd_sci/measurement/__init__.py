"""The measurement model of each operator family, one class each (`base.py` says what it holds);
`family_class` is the one place an operator spec's family is named."""

from __future__ import annotations

from typing import Mapping

from rsd_sci.measurement.base import MEMBERS, Measurement

FAMILIES = ("mri", "ct", "image")
CORRUPTIONS = ("noise", "blur", "inpaint", "downsample")

__all__ = ["CORRUPTIONS", "FAMILIES", "MEMBERS", "Measurement", "baselines_of", "family_class", "family_of",
           "family_of_baseline"]


def family_class(spec: Mapping) -> type[Measurement]:
    """The family class of an operator spec: mri, ct, image/inpaint (pixel masks) or
    image/noise|blur|downsample (the data kind); ValueError for any other."""
    family = spec.get("family")
    if family == "mri":
        from rsd_sci.measurement.mri import MRI

        return MRI
    if family == "ct":
        from rsd_sci.measurement.ct import CT

        return CT
    if family == "image":
        from rsd_sci.measurement.image import DATA_CORRUPTIONS, DataSpace, PixelMasks

        corruption = spec.get("corruption")
        if corruption == "inpaint":
            return PixelMasks
        if corruption in DATA_CORRUPTIONS:
            return DataSpace
        raise ValueError(f"unknown corruption {corruption!r} (expected one of {', '.join(CORRUPTIONS)})")
    raise ValueError(f"unknown operator family {family!r} (expected one of {', '.join(FAMILIES)})")


def family_of(spec: Mapping) -> Measurement:
    """The family of an operator spec (`family_class`): its measurement class holding the spec and no batch
    (`measure(batch)` binds one)."""
    return family_class(spec)(spec)


def baselines_of(family: str) -> tuple[str, ...]:
    """The classical reconstruction methods that fit data of a family known only by its name (before any
    data are read): those of its classes (mri, ct: one; image: the union over its corruptions, which
    all have "corrupted"); none for an unknown name."""
    try:
        classes = [family_class({"family": family, "corruption": c}) for c in CORRUPTIONS]
    except ValueError:
        return ()
    return tuple(dict.fromkeys(method for cls in classes for method in cls.baselines))


def family_of_baseline(method: str) -> str | None:
    """The name of the family whose classical baselines include `method` (fbp: ct), None when none does."""
    return next((name for name in FAMILIES if method in baselines_of(name)), None)
