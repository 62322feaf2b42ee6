"""A feature extractor the user supplies for FID/KID: loaded, its interface told from its forward, fed.

Two interfaces, told apart by the arguments of the module's `forward` (for a TorchScript file its
schema, `module.forward.schema.arguments`; for a Python module its signature), never by a flag:

    "magnitude"  forward(x)                          x (B, 1, H, W) float32, the magnitude images as
                                                     they are (rsd-sci's own one-channel extractors)
    "inception"  forward(x, return_features, ...)    the StyleGAN2-ADA Inception TorchScript detector:
                                                     called as module(x, return_features=True) with
                                                     x (B, 3, H, W) uint8, returning (B, 2048) features

A forward with an argument named `return_features` is "inception"; otherwise one with exactly one
argument without a default is "magnitude"; any other forward is refused.

The "inception" input (the paper's FID protocol, docs/guide.md): per image, the magnitude v (C > 1:
the root-sum-of-squares over channels, i.e. |Re + i Im|; C = 1: the image as it is) scaled by its own
maximum, u = round(255 · clip(v / max v, 0, 1)) (an image with max v ≤ 0 is all zeros), as uint8,
repeated to 3 channels, at its own size (the detector resizes to 299 × 299 itself).
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import torch

from rsd_sci.errors import InputError

FEATURE_BATCH = 64  # images per call of the feature extractor
INTERFACE_INPUT = {"magnitude": "(B, 1, H, W) images", "inception": "(B, 3, H, W) uint8 images in 0-255"}


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
    """(N, 3, H, W) uint8 of images (N, C, H, W): each magnitude scaled by its own maximum to 0-255,
    u = round(255 · clip(v / max v, 0, 1)), repeated to 3 channels (module docstring).

    Example:
        >>> inception_input(np.array([[[[0.0, 1.0, 2.0]]], [[[-1.0, 0.0, 0.0]]]]))[:, 0].tolist()
        [[[0, 128, 255]], [[0, 0, 0]]]
    """
    v = torch.from_numpy(magnitudes(images))
    peak = v.amax(dim=(1, 2, 3), keepdim=True)
    scaled = torch.where(peak > 0, v / peak.clamp_min(torch.finfo(v.dtype).tiny), torch.zeros_like(v))
    return (255 * scaled.clamp(0, 1)).round().to(torch.uint8).repeat(1, 3, 1, 1)


def extract_features(extractor, images: np.ndarray, device) -> np.ndarray:
    """Features (N, d) float64 of images (N, C, H, W) through the extractor, fed by its interface:
    (B, 1, H, W) float32 magnitudes, or the StyleGAN2-ADA detector's (B, 3, H, W) uint8 with
    return_features=True (module docstring)."""
    inception = interface_of(extractor) == "inception"
    x = inception_input(images) if inception else torch.from_numpy(magnitudes(images))
    with torch.no_grad():
        out = [(extractor(batch.to(device), return_features=True) if inception else extractor(batch.to(device)))
               .reshape(len(batch), -1) for batch in x.split(FEATURE_BATCH)]
    return torch.cat(out).to("cpu", torch.float64).numpy()
