"""The one place model files are loaded: a teacher or generator file (or a run directory) as a `Model`
(`rsd_sci.diffusion.model`), checked against its metadata before its weights are read.

    model = load_model("RUN")                          # generator.safetensors, else teacher.safetensors
    model = load_model("RUN/teacher.safetensors", "cuda", kind="teacher")
    x0 = model.denoiser(x, sigma, cond)                # D(x, σ, cond) -> x0, network channels
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from rsd_sci.diffusion.model import KINDS, Model, build_model
from rsd_sci.errors import InputError


def resolve_model_path(path: str | Path, kind: str | None = None) -> Path:
    """A model file, or a run directory: its `kind` file, or with no kind its generator, else teacher."""
    path = Path(path)
    if path.is_dir():
        names = [f"{kind}.safetensors"] if kind else ["generator.safetensors", "teacher.safetensors"]
        for name in names:
            if (path / name).is_file():
                return path / name
        raise InputError(path, f"holds no {' or '.join(names)}")
    return path


def load_model(path: str | Path, device: str | torch.device = "cpu", kind: str | None = None,
               require_bank: bool = True) -> Model:
    """A teacher or generator file (or a run directory, `resolve_model_path`) on `device`, in eval mode,
    with its EMA weights; InputError unless it is an rsd-sci model (of `kind` when named) with an
    operator bank (unless require_bank is False) whose metadata build a network of its tensors' shapes."""
    from rsd_sci.engine.checkpoint import read_model_header, load_safetensors
    from rsd_sci.engine.operator_bank import split_bank

    path = resolve_model_path(path, kind)
    shapes, meta = read_model_header(path)
    found = meta.get("kind")
    if found not in KINDS:
        raise InputError(path, f"is not an rsd-sci teacher or generator (kind {found!r})")
    if kind is not None and found != kind:
        raise InputError(path, f"not a {kind} model (kind {found!r})")
    check_model_file(path, meta, shapes)
    state, meta = load_safetensors(path)
    model = build_model(meta["operator"], meta["network"], meta["sigma_n"]["max"], found)
    state, meta["bank"] = split_bank(state, meta)
    if require_bank and meta["bank"] is None:
        raise InputError(path, "holds no operator bank (made by an older rsd-sci); re-export it with `train`")
    broken = [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if broken:
        raise InputError(path, f"holds NaN or Inf weights ({len(broken)} tensors, e.g. {broken[0]})")
    model.denoiser.load_state_dict(state)
    model.denoiser.to(device).eval()
    model.meta, model.path = meta, path
    return model


def check_model_file(path: Path, meta: dict, shapes: dict[str, list[int]]) -> None:
    """InputError naming the file unless its metadata (operator, network, σ_n, bank) build a model whose
    weights have exactly the file's tensor shapes. The model is built on the meta device first, so a
    file that declares a huge network is refused before anything is allocated."""
    from rsd_sci.engine.operator_bank import PREFIX
    from rsd_sci.memory_guard import check_fits_in_memory

    needed = (("operator", dict), ("network", dict), ("sigma_n", dict))
    needed += (("sigma_init", (int, float)),) if meta.get("kind") == "generator" else ()
    for key, kind in needed:
        if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool):
            raise InputError(path, f"model metadata lacks a valid {key!r}")
    try:
        with torch.device("meta"):
            expected = build_model(meta["operator"], meta["network"], float(meta["sigma_n"]["max"]),
                                   meta["kind"]).denoiser.state_dict()
    except (KeyError, ValueError, TypeError, AssertionError) as err:
        raise InputError(path, f"model metadata do not describe a network ({type(err).__name__}: {err})") from None
    weights = {name: shape for name, shape in shapes.items() if not name.startswith(PREFIX)}
    if weights.keys() != expected.keys():
        odd = sorted(weights.keys() ^ expected.keys())
        raise InputError(path, f"its tensors are not the network its metadata declare ({len(odd)} names differ, "
                               f"e.g. {odd[0]})")
    for name, tensor in expected.items():
        if list(tensor.shape) != list(weights[name]):
            raise InputError(path, f"tensor {name} has shape {weights[name]}, the declared network needs "
                                   f"{list(tensor.shape)}")
    bank = meta.get("bank")
    if bank is not None:
        y_shape = bank.get("y_shape") if isinstance(bank, dict) else None
        if not (isinstance(y_shape, list) and all(isinstance(n, int) and n > 0 for n in y_shape)):
            raise InputError(path, "model metadata: the operator bank's y_shape is not a list of sizes")
        check_fits_in_memory(math.prod(y_shape) * 8 * 16,
                             f"its operator bank's measurements of shape {y_shape}", path)
