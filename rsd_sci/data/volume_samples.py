"""One file as a batch of measurement samples, built exactly as `data make` builds its sets, and the
reconstructions of those samples back in the file's own units and format (`rsd-sci reconstruct`).

fastMRI (`fastmri_volume`, `to_file_magnitudes`): the `data make --source fastmri` code path; the
magnitudes come back centre-cropped to the file's reconstruction size, in its `reconstruction_rss` units.

NIfTI (`nifti_volume`, `to_volume_units`, `write_volume`), forward as `data make --source nifti`
(`sources.file_volumes`, `make.operator_spec`, `make.process_slice`): slices along axis 2 (4-D: volume-major, see `rsd_sci.data.nifti`), each
zero-padded to a centred n × n square (n = max(h, w)) and, when the options carry a `size`, resampled
to size × size; then per modality

    mri    m = |v| / p  (p = the volume's 99.5th percentile of |v|), a smooth random phase, k-space of
           the slice (simulated coils when coils > 1), the per-slice calibration scale a, the mask seeded
           by the file name:  y = M ⊙ F(a · m e^{iφ})
    ct     μ = μ_water (1 + HU / 1000) (≥ 0), x' = a μ + b, y = A_views x'  (needs a CT volume in HU)
    image  m = clip(|v| / p, 0, 1), x' = 2 m − 1, y = A x' + σ_n n  (noise / blur / inpaint / downsample)

Back (`to_volume_units`): the inverse of the per-sample normalisation x' = a·x + b and of the
modality's map, so the output is in the INPUT's units: MRI and image magnitudes in the volume's own
intensity units (|x'| / a · p), CT in Hounsfield units (1000 (μ − μ_water) / μ_water, not clipped; the
parallel-beam geometry sees the inscribed circle only, and FBP's zero outside it reads 0 HU);
then the resampling is undone (linear) and the padding cropped, giving float32 slices (S, h, w) that
`write_volume` puts back on axis 2 with the input's affine and header (data type float32). A std map
has no offset: only the linear factor is applied (MRI, image: p / a; CT: 1000 / (a μ_water)).

An MRI slice that is all zero (empty slices at the edge of a volume) has no calibration scale; it is
not reconstructed and comes back as zeros.

Example (your own file; no model: MRI, R = 4 random lines):
    vol = nifti_volume("t1.nii.gz", dict(modality="mri", accel=4))
    # ... reconstruct vol["samples"] (B, 1, H, W) -> images, then
    write_volume("recon.nii.gz", to_volume_units(images, vol), vol, overwrite=True)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from rsd_sci.errors import InputError

SLICE_AXIS = 2  # `data make` slices NIfTI volumes along the third voxel axis


# -- fastMRI files ---------------------------------------------------------------------------------------
def fastmri_volume(path: str | Path, mask_spec: dict, virtual_coils: int | None = None) -> dict:
    """One fastMRI file as `data make --source fastmri` builds its samples (same code path: readout
    crop, pre-whitening, optional coil compression, per-slice scale, ESPIRiT maps; the file's own
    `mask` used as measured, else `mask_spec` seeded by the file name).

    Returns {"spec": the operator spec, "samples": [per-slice sample dicts with "index"],
    "file_scale": (S,) per-slice factors from normalised to the file's units, "recon_size": (h, w)}.
    file_scale = the calibration-region scale of the file's own (not whitened) read-out-cropped
    k-space, so multi-coil images come back in the units of the file's `reconstruction_rss`.
    """
    from rsd_sci.data import make, scaling, simulate_mri, sources
    from rsd_sci.data.fastmri import FastMRIFile

    path = Path(path)
    make_spec = make.MakeSpec(modality="mri", source="fastmri", input=str(path), virtual_coils=virtual_coils,
                         **{k: v for k, v in dict(accel=mask_spec.get("acceleration"), mask=mask_spec.get("kind"),
                                                  center_fraction=mask_spec.get("center_fraction")).items()
                            if v is not None})
    make_spec.validate()
    (volume,) = sources.file_volumes("fastmri", "mri", [path], None)
    operator = make.operator_spec(make_spec, {"all": [(volume, 0)]})
    samples, file_scale = [], []
    for i in range(volume.n_slices):
        sl = volume.read(i)
        sample = slice_sample(make, make_spec, operator, volume.name, i, sl)
        sample["index"] = i
        samples.append(sample)
        raw = simulate_mri.crop_readout(sl.kspace.astype(np.complex64), sl.recon_size[0])
        calib = int(simulate_mri.center_lines(np.asarray(sample["centers"])).sum())
        file_scale.append(1.0 / scaling.calibration_rss_scale(raw, calib_lines=calib))
    with FastMRIFile(path) as f:
        recon_size = tuple(int(n) for n in f.recon_size)
    return dict(spec=operator, samples=samples, file_scale=np.asarray(file_scale), recon_size=recon_size)


def slice_sample(make, make_spec, operator, name, i, sl) -> dict:
    """`data make`'s per-slice processing; a slice whose noise level cannot be estimated (too few
    peripheral k-space samples: small files) gets σ_n = 0, which only Tweedie teachers read; other
    problems (e.g. too few calibration lines for ESPIRiT) are InputErrors naming the file."""
    import dataclasses
    import logging

    try:
        return make.process_slice(make_spec, operator, name, i, sl, False)
    except ValueError as err:
        if make_spec.sigma_n is None and ("estimate sigma" in str(err) or "periphery" in str(err)):
            logging.getLogger(__name__).info("%s slice %d: %s; using sigma_n = 0", name, i, err)
            try:
                return make.process_slice(dataclasses.replace(make_spec, sigma_n=0.0), operator, name, i, sl, False)
            except ValueError as again:
                err = again
        raise InputError(name, str(err)) from None


def to_file_magnitudes(images: torch.Tensor, file_scale: np.ndarray, recon_size: tuple[int, int]) -> np.ndarray:
    """Normalised complex images (S, 1, H, W) -> magnitudes in the file's units, centre-cropped to the
    reconstruction size (fastMRI's offsets), float32 (S, h, w)."""
    from rsd_sci.data.simulate_mri import center_crop_clamped

    mag = images[:, 0].abs().double().cpu().numpy() / np.asarray(file_scale)[:, None, None]
    return np.ascontiguousarray(center_crop_clamped(mag, recon_size)).astype(np.float32)


# -- NIfTI files ---------------------------------------------------------------------------------------
def std_path(path: str | Path) -> Path:
    """Where the std of a NIfTI output goes: `_std` before the suffix (recon.nii.gz -> recon_std.nii.gz)."""
    path = Path(path)
    name = path.name
    suffix = ".nii.gz" if name.lower().endswith(".nii.gz") else path.suffix
    return path.with_name(name[: len(name) - len(suffix)] + "_std" + suffix)


def nifti_make_spec(path: str | Path, options: dict):
    """`data make`'s MakeSpec for one NIfTI file with `options` (MakeSpec fields: modality, accel, mask,
    center_fraction, coils, size, views, n_angles, view_kind, sigma_n, corruption, ..., seed)."""
    from rsd_sci.data.make import MakeSpec

    make_spec = MakeSpec(source="nifti", input=str(path), **options)
    make_spec.validate()
    return make_spec


def check_fits_model(path: str | Path, options: dict, operator: dict) -> None:
    """InputError unless the file's padded in-plane square (after the resampling of `options["size"]`)
    has the model's image size. Reads the header only, so a folder is checked before any work."""
    import nibabel as nib

    try:
        shape = nib.load(path).shape
    except Exception as e:  # nibabel raises several types for unreadable files
        raise InputError(path, f"not a readable NIfTI file ({type(e).__name__})") from None
    h, w = (int(n) for n in (tuple(shape) + (1, 1))[:2])
    n = int(options.get("size") or max(h, w))
    model = list(operator["shape"]) if "shape" in operator else [operator["image_size"]] * 2
    if [n, n] != [int(m) for m in model]:
        padded = f" (padded to {n}×{n})" if h != w else ""
        raise InputError(path, f"in-plane shape {h}×{w}{padded} does not fit the model's {model[0]}×{model[1]} "
                               "images (give volumes of that size, or train with --size to resample)")


def nifti_volume(path: str | Path, options: dict) -> dict:
    """One NIfTI file as `data make --source nifti` builds its samples (see the module docstring).

    Returns {"spec": the operator spec, "samples": per-slice sample dicts with "index" (empty MRI
    slices left out), "kept": their slice indices, "n_slices", "scale", "offset" (per kept sample),
    "p" (the intensity reference, 1 for CT), "modality", "plane" (h, w), "size" (resampled size or
    None), "affine", "header"}.
    """
    from rsd_sci.data import make, sources
    from rsd_sci.data.nifti import normalize_intensity, read_nifti, volume_to_slices

    path = Path(path)
    make_spec = nifti_make_spec(path, options)
    source = read_nifti(path)
    slices = volume_to_slices(source.data, axis=SLICE_AXIS)
    p = 1.0 if make_spec.modality == "ct" else normalize_intensity(np.abs(slices))[1]
    (volume,) = sources.file_volumes("nifti", make_spec.modality, [path], make_spec.size)
    operator = make.operator_spec(make_spec, {"all": [(volume, 0)]})
    samples, kept = [], []
    for i in range(volume.n_slices):
        sl = volume.read(i)
        if make_spec.modality == "mri" and not np.any(sl.image):
            continue
        sample = slice_sample(make, make_spec, operator, volume.name, i, sl)
        sample["index"] = i
        samples.append(sample)
        kept.append(i)
    if not samples:
        raise InputError(path, "every slice is empty")
    return dict(spec=operator, samples=samples, kept=kept, n_slices=volume.n_slices, modality=make_spec.modality,
                scale=np.array([s["scale"] for s in samples], np.float64),
                offset=np.array([s["offset"] for s in samples], np.float64), p=float(p),
                plane=tuple(slices.shape[1:]), size=make_spec.size, affine=source.affine, header=source.header)


def to_volume_units(images: torch.Tensor, vol: dict, std: bool = False) -> np.ndarray:
    """Reconstructions (S_kept, 1, H, W) in normalised units (complex for MRI) -> float32 slices
    (S, h, w) in the volume's units (std=True: a std map, linear part only); see the module docstring."""
    from rsd_sci.data.hounsfield import MU_WATER, mu_to_hu

    x = images[:, 0]
    x = (x.abs() if x.is_complex() else x).double().cpu().numpy()
    a, b = vol["scale"][:, None, None], vol["offset"][:, None, None]
    x = x / a if std else (x - b) / a
    if vol["modality"] == "ct":
        x = x * (1000.0 / MU_WATER) if std else mu_to_hu(x)
    else:
        x = x * vol["p"]
    h, w = vol["plane"]
    out = np.zeros((vol["n_slices"], h, w), np.float32)
    for j, i in enumerate(vol["kept"]):
        out[i] = _unfit(x[j], h, w)
    return out


def _unfit(image: np.ndarray, h: int, w: int) -> np.ndarray:
    """The inverse of `sources._fit`: resample back to n × n (linear, n = max(h, w)), crop the padding."""
    n = max(h, w)
    if image.shape[-1] != n:
        image = ndimage.zoom(image, n / image.shape[-1], order=1, grid_mode=True, mode="nearest")
    top, left = (n - h) // 2, (n - w) // 2
    return image[top:top + h, left:left + w]


def write_volume(path: str | Path, slices: np.ndarray, vol: dict, overwrite: bool = False,
                 description: str = "") -> None:
    """Write float32 slices (S, h, w) as the input's volume: same shape, affine and header geometry
    (atomically; `description` goes in the header's 80-character descrip field)."""
    from rsd_sci.data.nifti import write_nifti

    header = vol["header"].copy()
    if description:
        header["descrip"] = description[:79].encode()
    write_nifti(path, slices, vol["affine"], axis=SLICE_AXIS, header=header, overwrite=overwrite)
