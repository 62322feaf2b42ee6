"""What a file or folder holds, as a plain dict (for `rsd-sci info`): fastMRI files, measurement sets
and their split files, NIfTI volumes, LoDoPaB ground-truth files, rsd-sci model files.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import yaml

from rsd_sci.data.measurement_set import FORMAT, MeasurementSet, is_measurement_set
from rsd_sci.errors import InputError


def describe(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.is_dir():
        if is_measurement_set(path):
            return _measurement_set(path)
        raise InputError(path, "a folder that is not a measurement set (no train.h5 and card.yaml)")
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return _nifti(path)
    if name.endswith(".safetensors"):
        return _model(path)
    if not h5py.is_hdf5(path):
        raise InputError(path, "not an HDF5 or NIfTI file")
    try:
        with h5py.File(path, "r") as f:
            keys = set(f.keys())
            is_set = f.attrs.get("format") == FORMAT
    except OSError:
        raise InputError(path, "not a readable HDF5 file (truncated?)") from None
    if is_set:
        return _split(path)
    if "kspace" in keys:
        return _fastmri(path)
    if "data" in keys:
        return _lodopab(path)
    if "reconstruction" in keys:
        with h5py.File(path, "r") as f:
            return dict(kind="fastMRI reconstruction", path=str(path), shape=list(f["reconstruction"].shape))
    raise InputError(path, f"HDF5 with unknown contents (datasets: {', '.join(sorted(keys)) or 'none'})")


def _fastmri(path: Path) -> dict:
    from rsd_sci.data.fastmri import FastMRIFile

    with FastMRIFile(path) as f:
        mask = f.mask
        return dict(kind="fastMRI file", path=str(path), multicoil=f.multicoil, coils=f.num_coils,
                    slices=f.num_slices, kspace_shape=list(f.kspace_shape), recon_size=list(f.recon_size),
                    padding=list(f.padding), target=f.target_key,
                    acceleration=None if mask is None else round(mask.size / max(int(mask.sum()), 1), 3),
                    attrs={k: _plain(v) for k, v in f.attrs.items()})


def _split(path: Path) -> dict:
    ms = MeasurementSet(path)
    info = ms.info
    out = dict(kind="measurement-set split", path=str(path), split=info.split, modality=info.modality,
               samples=len(ms), version=info.version, seed=info.seed, operator=info.operator)
    if len(ms):
        sample = ms[0]
        out["arrays"] = {k: f"{tuple(sample[k].shape)} {sample[k].dtype}" for k in ms.keys()}
        sigma = ms.column("sigma_n")
        out["sigma_n"] = {k: round(float(f(sigma)), 6) for k, f in (("min", np.min), ("max", np.max), ("mean", np.mean))}
        out["volumes"] = int(len(set(ms.column("source").tolist())))
        if "masks" in sample:   # lines, views or pixels: measured entries per kept one
            m = ms._handle()["masks"][:256].reshape(min(len(ms), 256), -1)  # a sample of at most 256 masks
            out["acceleration"] = round(float(np.mean(m.shape[1] / np.maximum(m.sum(1), 1))), 3)
    ms.close()
    return out


def _measurement_set(folder: Path) -> dict:
    try:
        card = yaml.safe_load((folder / "card.yaml").read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:   # safe_load: a python tag is refused, never run
        raise InputError(folder / "card.yaml", f"is not readable YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(card, dict):
        raise InputError(folder / "card.yaml", f"must be a YAML mapping (got {type(card).__name__})")
    splits = {s: _split(folder / f"{s}.h5") for s in ("train", "test") if (folder / f"{s}.h5").is_file()}
    shared = ("kind", "path", "modality", "operator", "version", "seed", "split")
    out = dict(kind="measurement set", path=str(folder), modality=splits["train"]["modality"],
               operator=splits["train"]["operator"], version=splits["train"]["version"])
    out.update({name: {k: v for k, v in facts.items() if k not in shared} for name, facts in splits.items()})
    out["made_with"] = {k: v for k, v in (card.get("made_with") or {}).items() if v not in (None, {}, [])}
    return out


def _nifti(path: Path) -> dict:
    from rsd_sci.data.nifti import read_nifti

    vol = read_nifti(path)
    zooms = vol.header.get_zooms()
    return dict(kind="NIfTI volume", path=str(path), shape=list(vol.data.shape), dtype=str(vol.header.get_data_dtype()),
                voxel_size=[float(z) for z in zooms], range=[float(vol.data.min()), float(vol.data.max())],
                affine=np.asarray(vol.affine).round(4).tolist())


def _model(path: Path) -> dict:
    """A teacher or generator file from its header: what it models, how it was trained, its size."""
    from rsd_sci.engine.checkpoint import read_model_header
    from rsd_sci.engine.operator_bank import PREFIX

    shapes, meta = read_model_header(path)
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    weights = [s for name, s in shapes.items() if not name.startswith(PREFIX)]
    bank = shapes.get(PREFIX + "sigma_n")
    facts = dict(kind=f"rsd-sci {meta.get('kind', 'model')}", path=str(path), modality=meta.get("modality"),
                 operator=meta.get("operator"), loss_member=meta.get("member"),
                 preset=config.get("preset"), teacher_steps=config.get("steps"), seed=config.get("seed"),
                 parameters=int(sum(np.prod(s, dtype=np.int64) for s in weights)), network=meta.get("network"),
                 operator_bank=f"{bank[0]} held-out operators" if bank else "none",
                 sigma_n=meta.get("sigma_n"), rsd_sci_version=meta.get("rsd_sci_version"))
    if meta.get("kind") == "generator":
        facts |= dict(distill_iterations=config.get("distill_steps"), selected_step=meta.get("selected_step"),
                      loss_space=meta.get("loss_space"), sigma_init=meta.get("sigma_init"), teacher=meta.get("teacher"))
        facts |= {k: meta[k] for k in ("selection_signal", "measurement_spectrum", "heldout_spectrum", "heldout_sw") if k in meta}
    return {k: v for k, v in facts.items() if v is not None}


def _lodopab(path: Path) -> dict:
    from rsd_sci.data.lodopab import read_lodopab

    data = read_lodopab(path)
    return dict(kind="LoDoPaB-CT ground truth", path=str(path), slices=len(data), shape=list(data[0].shape))


def _plain(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value
