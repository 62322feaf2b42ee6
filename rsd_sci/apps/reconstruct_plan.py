"""What `rsd-sci reconstruct` reads and writes, checked before any work: the kind of input (a measurement
set, fastMRI or NIfTI files), the output per input, every file that will be written, the model file.
`rsd_sci.apps.reconstruct_files.reconstruct_inputs` then carries the `Plan` out.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from rsd_sci.data.output_guard import check_outputs
from rsd_sci.engine.model import resolve_model_path
from rsd_sci.errors import InputError


def input_kind(path: Path) -> tuple[str, list[Path] | None]:
    """("set", None) | ("fastmri", files) | ("nifti", files) for a measurement set, a fastMRI or NIfTI
    file, or a folder of either kind (sorted); InputError otherwise."""
    from rsd_sci.data.fastmri import is_fastmri_file
    from rsd_sci.data.measurement_set import is_measurement_set
    from rsd_sci.data.nifti import is_nifti_name

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir() and is_measurement_set(path):
        return "set", None
    if path.is_file():
        if is_nifti_name(path):
            return "nifti", [path]
        if is_fastmri_file(path):
            return "fastmri", [path]
    else:
        fastmri = sorted(p for p in path.glob("*.h5") if is_fastmri_file(p))
        nifti = sorted(p for p in path.iterdir() if p.is_file() and is_nifti_name(p))
        if fastmri and nifti:
            raise InputError(path, "holds both fastMRI and NIfTI files: give one kind per folder")
        if fastmri or nifti:
            return ("fastmri", fastmri) if fastmri else ("nifti", nifti)
    raise InputError(path, "is neither a measurement set (a folder with train.h5 and card.yaml) nor a fastMRI "
                           "or NIfTI file or folder of them")


def output_paths(input: Path, out: Path, kind: str, files: list[Path] | None) -> list[Path]:
    """The reconstruction per input file ([out] for a set or a single file), checked for form; see
    `all_outputs` for everything that will be written."""
    from rsd_sci.data.nifti import is_nifti_name

    if kind == "set" or Path(input).is_file():
        if out.is_dir():
            raise InputError(out, "is a folder: give an output file for a single input")
        if kind == "nifti" and not is_nifti_name(out):
            raise InputError(out, "a NIfTI input is written as NIfTI: the output must end in .nii or .nii.gz")
        return [out]
    if (out.exists() and not out.is_dir()) or is_nifti_name(out) or out.suffix.lower() == ".h5":
        raise InputError(out, "names a file: a folder input is written to a folder (one file per input)")
    return [out / p.name for p in files]


def all_outputs(targets: list[Path], kind: str, n_samples: int) -> list[Path]:
    """Every file the run writes: the targets and, for NIfTI with n_samples > 1, their std files."""
    from rsd_sci.data.volume_samples import std_path

    extra = [std_path(t) for t in targets] if kind == "nifti" and n_samples > 1 else []
    return list(targets) + extra



@dataclasses.dataclass
class Plan:
    """What a reconstruction reads and writes: kind ("set" | "fastmri" | "nifti"), its input files (None
    for a set), the reconstruction per input (`output_paths`) and the model file (None: a baseline)."""

    kind: str
    input: Path
    out: Path
    files: list[Path] | None
    targets: list[Path]
    model_path: Path | None


def plan_outputs(input: Path, out: Path, method: str, model: Path | None, n_samples: int, force: bool) -> Plan:
    """The inputs and outputs of `rsd-sci reconstruct`, checked before any work: InputError for an input
    of no known kind, an output of the wrong form, one that is an input (`check_outputs`) or one that
    exists (unless `force`)."""
    kind, files = input_kind(input)
    targets = output_paths(input, out, kind, files)
    model_kind = "teacher" if method == "adps" else None   # from a run directory: the teacher for A-DPS
    model_path = None if model is None else resolve_model_path(model, model_kind)
    outputs = all_outputs(targets, kind, n_samples)
    check_outputs(outputs, {"--input": input, "--model": model_path})   # before "exists": --force never helps
    existing = [t for t in outputs if t.exists()]
    if existing and not force:
        raise InputError(existing[0], "exists (use --force)")
    return Plan(kind, input, out, files, targets, model_path)
