"""rsd-sci: generative priors for MRI and CT learned from corrupted measurements only.

The Python API, for the scripts researchers write around a trained model (docs/python.md has one
runnable example per flow):

    train(out, **settings)              a run: teacher, one-step generator, evaluation (`rsd-sci train`)
    load_model(path, kind=None)         a teacher or generator `Model` from its file or run folder
    sample(model, n)                    n images (n, 1, H, W) from a generator or a teacher
    mri_measurement, ct_measurement,    a `Measurement` (operator and data) from your own arrays
      image_measurement
    read_measurements(set_dir)          ... from a measurement set's rows
    read_scan(path, model)              ... from a fastMRI file or NIfTI volume (a `Scan`)
    reconstruct(m, method, model)       (mean, std) by A-DPS, the generator prior or a baseline (METHODS)
    volume_metrics, nmse, psnr, ssim,   fastMRI's image metrics, per volume, and their mean ± std
      summarize
    patch_sliced_wasserstein,           distances between image sets (no downloaded weights)
      power_spectrum_distance, sample_spread, read_image_set
    fid_kid(samples, reference, extractor)   FID and KID through your TorchScript feature extractor
    InputError                          what every function raises for input a user can fix

Tensors follow docs/file-formats.md: images (B, 1, H, W), complex for MRI; k-space complex
(B, coils, H, W); sinograms real (B, 1, views, detectors). Names are imported on first use, so
`import rsd_sci` stays cheap.

>>> import rsd_sci
>>> "reconstruct" in rsd_sci.__all__ and callable(rsd_sci.reconstruct)
True
"""

from __future__ import annotations

import importlib

from rsd_sci.version import __version__

_HOMES = {
    "train": "rsd_sci.api",
    "Model": "rsd_sci.diffusion.model",
    "load_model": "rsd_sci.engine.model",
    "sample": "rsd_sci.api",
    "Measurement": "rsd_sci.measurement",
    "mri_measurement": "rsd_sci.data.arrays",
    "ct_measurement": "rsd_sci.data.arrays",
    "image_measurement": "rsd_sci.data.arrays",
    "read_measurements": "rsd_sci.api",
    "Scan": "rsd_sci.apps.reconstruct_files",
    "read_scan": "rsd_sci.api",
    "METHODS": "rsd_sci.posterior.reconstruct",
    "reconstruct": "rsd_sci.api",
    "volume_metrics": "rsd_sci.metrics.image",
    "nmse": "rsd_sci.metrics.image",
    "psnr": "rsd_sci.metrics.image",
    "ssim": "rsd_sci.metrics.image",
    "summarize": "rsd_sci.metrics.image",
    "patch_sliced_wasserstein": "rsd_sci.metrics.distribution",
    "power_spectrum_distance": "rsd_sci.metrics.distribution",
    "sample_spread": "rsd_sci.metrics.distribution",
    "read_image_set": "rsd_sci.data.image_sets",
    "fid_kid": "rsd_sci.api",
    "InputError": "rsd_sci.errors",
}
__all__ = list(_HOMES)


def __getattr__(name: str):
    """An API name, imported from its home module on first use (then cached here)."""
    if name not in _HOMES:
        raise AttributeError(f"module 'rsd_sci' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
