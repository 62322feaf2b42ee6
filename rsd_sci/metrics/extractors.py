"""A feature extractor the user supplies for FID/KID: loaded, its interface told from its forward, fed.

Two interfaces, told apart by the arguments of the module's `forward` (for a TorchScript file its
schema, `module.forward.schema.arguments`; for a Python module its signature), never by a flag:

    "magnitude"  forward(x)                          x (B, 1, H, W) float32, the magnitude images as
                                                     they are (rsd-sci's own one-channel extractors)
    "inception"  forward(x, return_features, ...)    the StyleGAN2-ADA Inception TorchScript detector:
                                                     called as module(x, return_features=True) with
                                                     x (B, 3, S, S) float32, returning (B, 2048) features

A forward with an argument named `return_features` is "inception"; otherwise one with exactly one
argument without a default is "magnitude"; any other forward is refused.

The "inception" input is the published RSD MRI protocol (the official code's metric utilities, read for
the facts): per image the magnitude v (C > 1: the root-sum-of-squares over channels, i.e. |Re + i Im|;
C = 1: the image as it is) in the set's own units, NOT rescaled to 0-255 (in the normalised units, where
the 99th percentile of the calibration image is 1, the detector sees values of about 0-1.5 of its
0-255 range, as published), zero-padded to a centred square S = max(H, W) (384 × 320 -> 384 × 384,
as the published images are), repeated to 3 channels; not resized (the detector resizes to 299 itself).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch

from rsd_sci.errors import InputError

FEATURE_BATCH = 64  # images per call of the feature extractor
INTERFACE_INPUT = {"magnitude": "(B, 1, H, W) images", "inception": "(B, 3, S, S) magnitude images"}


def load_extractor(path: Path, device) -> torch.jit.ScriptModule:
    """A TorchScript module from `path` (torch.jit.load: no pickle), in eval mode on `device`, whose
    forward has one of the two interfaces (InputError naming the file otherwise)."""
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        module = torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError, OSError):
        raise InputError(path, "not a TorchScript file (write one with torch.jit.script(module).save(PATH))") from None
    try:
        interface_of(module)
    except ValueError as err:
        raise InputError(path, str(err)) from None
    return module


def _forward_arguments(module) -> list[tuple[str, bool]]:
    """(name, has a default) of each argument of module.forward after self."""
    forward = getattr(module, "forward", module)
    schema = getattr(forward, "schema", None)
    if schema is not None:   # TorchScript: the compiled signature, self first
        return [(a.name, a.has_default_value()) for a in schema.arguments[1:]]
    parameters = inspect.signature(forward).parameters.values()   # a bound method: no self
    return [(p.name, p.default is not inspect.Parameter.empty) for p in parameters
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def interface_of(module) -> str:
    """"inception" or "magnitude" (module docstring); ValueError for a forward that has neither."""
    arguments = _forward_arguments(module)
    if any(name == "return_features" for name, _ in arguments):
        return "inception"
    if sum(not has_default for _, has_default in arguments) == 1:
        return "magnitude"
    shown = ", ".join(name for name, _ in arguments)
    raise ValueError(f"forward({shown}) is neither a one-channel extractor's forward(x) nor the StyleGAN2-ADA "
                     "Inception detector's forward(x, return_features)")


def magnitudes(images: np.ndarray) -> np.ndarray:
    """(N, 1, H, W) float32: the root-sum-of-squares over channels of (N, C, H, W); C = 1 as it is."""
    if images.shape[1] == 1:
        return images.astype(np.float32, copy=False)
    return np.sqrt((images.astype(np.float32) ** 2).sum(1, keepdims=True))


def inception_input(images: np.ndarray) -> torch.Tensor:
    """(N, 3, S, S) float32 of images (N, C, H, W), S = max(H, W): each magnitude in its own units,
    zero-padded to a centred square (left and top pads (S − W) // 2, (S − H) // 2), in 3 equal channels.

    Example:
        >>> x = inception_input(np.array([[[[3.0, 0.0]], [[4.0, 2.0]]]], np.float32))   # (Re, Im), 1 × 2
        >>> x.shape, x[0, 0].tolist(), bool((x[0, 2] == x[0, 0]).all())
        (torch.Size([1, 3, 2, 2]), [[5.0, 2.0], [0.0, 0.0]], True)
    """
    v = torch.from_numpy(magnitudes(images))
    (h, w), side = v.shape[-2:], max(v.shape[-2:])
    top, left = (side - h) // 2, (side - w) // 2
    square = torch.nn.functional.pad(v, (left, side - w - left, top, side - h - top))
    return square.repeat(1, 3, 1, 1)


def extract_features(extractor, images: np.ndarray, device) -> np.ndarray:
    """Features (N, d) float64 of images (N, C, H, W) through the extractor, fed by its interface:
    (B, 1, H, W) float32 magnitudes, or the StyleGAN2-ADA detector's (B, 3, S, S) float32 magnitudes
    with return_features=True (module docstring)."""
    inception = interface_of(extractor) == "inception"
    x = inception_input(images) if inception else torch.from_numpy(magnitudes(images))
    with torch.no_grad():
        out = [(extractor(batch.to(device), return_features=True) if inception else extractor(batch.to(device)))
               .reshape(len(batch), -1) for batch in x.split(FEATURE_BATCH)]
    return torch.cat(out).to("cpu", torch.float64).numpy()
