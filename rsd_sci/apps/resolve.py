"""What `train --data` points at: a measurement set (used as is), a raw source folder (fastMRI, NIfTI,
LoDoPaB, DICOM: turned into a measurement set under RUN/data once, with the command's own flags), or
nothing (the embedded phantoms, likewise built under RUN/data).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from rsd_sci.data.measurement_set import is_measurement_set
from rsd_sci.errors import InputError


def detect_source(folder: Path) -> str:
    """fastmri | lodopab | nifti | dicom, from the files in `folder`; InputError if none fits."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(folder, "no such file or folder")
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    names = [p.name.lower() for p in files]
    if any(n.startswith("ground_truth_") and n.endswith(".hdf5") for n in names):
        return "lodopab"
    if any(n.endswith((".nii", ".nii.gz")) for n in names):
        return "nifti"
    from rsd_sci.data.sources import is_dicom_file

    if any(n.endswith(".dcm") or is_dicom_file(p) for n, p in zip(names, files)):
        return "dicom"
    from rsd_sci.data.fastmri import is_fastmri_file

    if any(n.endswith(".h5") and is_fastmri_file(p) for n, p in zip(names, files)):
        return "fastmri"
    raise InputError(folder, "no usable data: not a measurement set, and no fastMRI, NIfTI, LoDoPaB or "
                             "DICOM files")


def prepare_data(data: str | None, modality: str, make_options: dict, seed: int, run_dir: Path,
                 progress: Callable[[int, int, str], None] | None = None) -> Path:
    """The measurement-set folder to train on, building RUN/data first when needed (once)."""
    if data is not None and is_measurement_set(data):
        return Path(data)
    target = Path(run_dir) / "data"
    if is_measurement_set(target):
        return target
    from rsd_sci.data.make import MakeSpec, make_measurement_set

    source = "phantom" if data is None else detect_source(Path(data))
    make_spec = MakeSpec(modality=modality, source=source, input=None if data is None else str(data), seed=seed,
                    **make_options)
    make_measurement_set(make_spec, target, force=False, progress=progress)
    return target
