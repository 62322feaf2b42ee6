"""Training state (torch.save, loaded with weights_only=True) and model exports (safetensors).

Two kinds of file, two formats:
- Training state (`save_training_state` / `load_training_state`): everything a run needs to resume
  (model, EMA and optimiser state dicts, step counters, RNG states as tensors, the config as plain
  values). Written with `torch.save` but read back with `torch.load(weights_only=True)`, which refuses
  any pickled object other than tensors and plain containers, so a checkpoint cannot run code. The
  writer checks the same rule before writing, so a bad value fails at save time, not at resume.
- Model export (`export_safetensors` / `load_safetensors`): weights only, in safetensors, with the
  metadata a model needs (config, operator spec, data scale) as strings: non-string values are
  JSON-encoded (their keys listed under "rsd_sci_json_keys" so they decode back unambiguously), plus
  "format": "rsd-sci model" and "rsd_sci_version".

Both writers are atomic (temporary file in the same folder, then `os.replace`): a killed process leaves
the previous file intact. Readers turn unreadable files into `InputError` (one-line CLI message).

Both files carry a digest of their contents (`content_digest`: a training state under "digest", a model
under the metadata key "rsd_sci_digest"), written with them and checked when they are read back, so a
changed byte is refused rather than trained on or sampled from; files written before digests existed are
read without the check. A stage keeps its previous checkpoint beside the current one
(`previous_checkpoint`); `resume_stage` falls back to it, with a warning, when the current one is damaged.

Example:
    >>> import tempfile, pathlib, torch
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> export_safetensors(d / "m.safetensors", {"w": torch.ones(2)}, {"config": {"lr": 1e-4}})
    >>> sd, meta = load_safetensors(d / "m.safetensors")
    >>> meta["config"], meta["format"], sd["w"].tolist()
    ({'lr': 0.0001}, 'rsd-sci model', [1.0, 1.0])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rsd_sci.data.atomic import atomic_path
from rsd_sci.disk_space import full_disk_message
from rsd_sci.errors import InputError
from rsd_sci.version import __version__

log = logging.getLogger(__name__)
MODEL_FORMAT = "rsd-sci model"
_FORMAT_KEY = "format"
_VERSION_KEY = "rsd_sci_version"
_JSON_KEYS_KEY = "rsd_sci_json_keys"
_DIGEST_KEY = "rsd_sci_digest"
_RESERVED = (_FORMAT_KEY, _VERSION_KEY, _JSON_KEYS_KEY, _DIGEST_KEY)
_STATE_DIGEST = "digest"   # the training state's entry that holds the digest of the others
_DAMAGED = "damaged: its contents do not match the digest written with them (a changed byte)"
_PLAIN = (int, float, bool, str, type(None))


def _check_loadable(value: Any, where: str) -> None:
    """Raise TypeError if `value` holds anything `torch.load(weights_only=True)` would refuse."""
    if isinstance(value, (torch.Tensor, *_PLAIN)):
        return
    if isinstance(value, (dict, OrderedDict)):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is not a str or int")
            _check_loadable(item, f"{where}.{key}")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_loadable(item, f"{where}[{i}]")
        return
    raise TypeError(f"{where}: a {type(value).__name__} cannot be stored in a training checkpoint "
                    "(tensors, numbers, strings and dicts/lists of them only)")


def content_digest(value: Any) -> str:
    """sha256 (hex) of a nest of dicts, lists/tuples, tensors (dtype, shape and bytes) and plain values,
    in their order: what a training state or a model file holds, the same after a save and a load.

    >>> content_digest({"w": torch.ones(2)}) == content_digest({"w": torch.ones(2)}), content_digest([1]) == content_digest([True])
    (True, False)
    """
    digest = hashlib.sha256()
    _feed(digest, value)
    return digest.hexdigest()


def _feed(digest, value: Any) -> None:
    """Add `value` to a running hash (`content_digest`), with markers so that nests cannot alias."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"T{tensor.dtype}{tuple(tensor.shape)}:".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(value, Mapping):
        digest.update(b"{")
        for key, item in value.items():
            digest.update(f"{key!r}:".encode())
            _feed(digest, item)
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[")
        for item in value:
            _feed(digest, item)
        digest.update(b"]")
    else:
        digest.update(f"{type(value).__name__}={value!r};".encode())


def previous_checkpoint(path: str | Path) -> Path:
    """Where a stage keeps its checkpoint before the last one: state.pt -> state.previous.pt."""
    path = Path(path)
    return path.with_name(f"{path.stem}.previous{path.suffix}")


def save_training_state(path: str | Path, state: Mapping[str, Any], keep_previous: bool = False) -> None:
    """Write `state` and its `content_digest` to `path` atomically with torch.save (parent folders are
    created); keep_previous: the file it replaces becomes `previous_checkpoint(path)`.

    Values may be tensors, ints, floats, bools, strings, None and dicts/lists/tuples of them (state
    dicts of modules and optimisers qualify; store RNG states with `rng_state()`). Anything else raises
    TypeError before a byte is written. Tensors are moved to the CPU by the caller or kept as they are
    (load_training_state maps them to the CPU).
    """
    state = dict(state)
    _check_loadable(state, "state")
    state[_STATE_DIGEST] = content_digest(state)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _disk_full_as_input_error(path), atomic_path(path) as tmp:
        torch.save(state, tmp)
        if keep_previous and path.is_file():   # killed between the two renames: resume_stage takes it
            os.replace(path, previous_checkpoint(path))


def load_training_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a training state written by `save_training_state` (torch.load with weights_only=True).

    Raises InputError for a missing or unreadable file, for one that holds pickled objects other than
    tensors and plain containers (such objects are refused, never constructed) and for one whose contents
    do not match their digest. The digest itself is not returned.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such checkpoint file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        blocked = [line.strip() for line in str(err).splitlines() if "GLOBAL" in line]
        if blocked:  # a pickled object the safe unpickler refused (never constructed)
            raise InputError(path, "refused: the checkpoint holds objects other than tensors and "
                                   f"plain values (loaded with weights_only=True): {blocked[0]}") from err
        raise InputError(path, "not a readable training checkpoint (not a torch.save file)") from err
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise InputError(path, f"not a readable training checkpoint ({_first_line(err)})") from err
    if not isinstance(state, dict):
        raise InputError(path, f"a training checkpoint holds a dict, this one a {type(state).__name__}")
    stored = state.pop(_STATE_DIGEST, None)   # None: written before checkpoints carried a digest
    if stored is not None and stored != content_digest(state):
        raise InputError(path, _DAMAGED)
    return state


def save_stage_state(path: str | Path, steps_done: int, **parts) -> None:
    """save_training_state of {name: part.state_dict()} for each part (modules, optimisers, EMAs), the
    step and the RNG states: what `resume_stage` reads back. The checkpoint it replaces is kept as the
    previous one."""
    save_training_state(path, {name: part.state_dict() for name, part in parts.items()}
                        | dict(step=steps_done, rng=rng_state()), keep_previous=True)


def resume_stage(path: str | Path, total_steps: int, **parts) -> int:
    """Load a `save_stage_state` checkpoint into the named parts and the RNGs; returns its step (0 when
    there is no checkpoint yet). A damaged or unreadable checkpoint gives way to the previous one with a
    warning; with none, or a damaged one too, its InputError stands. InputError too when the checkpoint
    does not fit the parts (another stage's or run's) or its step is outside 0 to the stage's `total_steps`."""
    found = [p for p in (Path(path), previous_checkpoint(path)) if p.is_file()]
    if not found:
        return 0
    state = _first_readable(found)
    try:
        for name, part in parts.items():
            if name in state or not getattr(part, "optional", False):   # optional: older checkpoints lack it
                part.load_state_dict(state[name])
        set_rng_state(state["rng"])
        step = int(state["step"])
    except KeyError as err:
        raise InputError(path, f"is not a checkpoint of this stage (it has no {err} entry)") from None
    except (RuntimeError, ValueError, TypeError) as err:   # load_state_dict's mismatches, a damaged index
        raise InputError(path, f"does not fit this stage's model ({_last_line(err)})") from None
    if not 0 <= step <= total_steps:
        raise InputError(path, f"is at step {step}, outside this stage's 0 to {total_steps} steps "
                               "(--steps for the teacher, --distill-steps for the distillation)")
    return step


def _first_readable(paths: list[Path]) -> dict[str, Any]:
    """The training state of the first of `paths` that reads back whole; the first one's InputError when
    none does. Passing over one says so (a warning)."""
    try:
        return load_training_state(paths[0])
    except InputError as err:
        if len(paths) == 1:
            raise
        try:
            state = load_training_state(paths[1])
        except InputError:
            raise err from None
        log.warning("%s; resuming from the previous checkpoint %s (step %s)", err, paths[1], state.get("step"))
        return state


def rng_state() -> dict[str, Any]:
    """The global torch RNG states as tensors: {"cpu": ByteTensor, "cuda": [ByteTensor per device]}."""
    state: dict[str, Any] = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore RNG states saved by `rng_state` (CUDA states only where CUDA is available)."""
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = list(state["cuda"])[: torch.cuda.device_count()]
        for device, cuda_state in enumerate(cuda_states):
            torch.cuda.set_rng_state(cuda_state, device)


@contextlib.contextmanager
def _disk_full_as_input_error(path: Path):
    """A write that failed because its disk is full (torch.save reports it as a RuntimeError about
    positions, safetensors as an I/O error) becomes one line naming the folder; the atomic writer
    inside has removed its temporary, so the previous checkpoint stands."""
    from safetensors import SafetensorError

    try:
        yield
    except (OSError, RuntimeError, SafetensorError) as err:
        full = full_disk_message(path.parent)
        if full is None:
            raise
        raise InputError(path.parent, f"{full} writing {path.name}; the last checkpoint stands: free space, "
                                      f"then run the same command ({_first_line(err)})") from None


def _first_line(err: BaseException) -> str:
    """The first line of an exception message (library messages can span many lines)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _last_line(err: BaseException) -> str:
    """The last line of an exception message: load_state_dict's first line only names the module."""
    text = str(err).strip()
    return text.splitlines()[-1].strip() if text else type(err).__name__


def _encode_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    """User metadata -> safetensors' str -> str map (JSON for non-strings) plus format and version."""
    out: dict[str, str] = {}
    json_keys = []
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings, got {key!r}")
        if key in _RESERVED:
            raise ValueError(f"metadata key {key!r} is reserved (written by export_safetensors)")
        if isinstance(value, str):
            out[key] = value
            continue
        try:
            out[key] = json.dumps(value, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise TypeError(f"metadata {key!r} is not JSON-encodable: {err}") from err
        json_keys.append(key)
    out[_JSON_KEYS_KEY] = json.dumps(sorted(json_keys))
    out[_FORMAT_KEY] = MODEL_FORMAT
    out[_VERSION_KEY] = __version__
    return out


def export_safetensors(path: str | Path, state_dict: Mapping[str, torch.Tensor],
                       metadata: Mapping[str, Any]) -> None:
    """Write `state_dict` (name -> tensor) and `metadata` to a safetensors file, atomically.

    Tensors are copied to the CPU as contiguous, unshared tensors (tied weights are stored twice;
    safetensors refuses shared storage). Metadata values that are not strings are JSON-encoded;
    "format" = "rsd-sci model", "rsd_sci_version" and the digest of the tensors and metadata,
    "rsd_sci_digest", are added (reserved keys).
    """
    from safetensors.torch import save_file

    tensors = {}
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict[{name!r}] is a {type(tensor).__name__}, not a tensor")
        tensors[name] = tensor.detach().to("cpu").contiguous().clone()
    encoded = _encode_metadata(metadata)
    encoded[_DIGEST_KEY] = _model_digest(tensors, encoded)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with _disk_full_as_input_error(path), atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=encoded)
        _sort_metadata(tmp)


def _sort_metadata(path: Path) -> None:
    """Rewrite a safetensors file's header in place with its "__metadata__" keys sorted, so the same
    model gives the same bytes: the library writes that map in a random order (safetensors issue 584,
    open in 0.8). The header is an 8-byte little-endian length n and n bytes of JSON, which the format
    lets end in spaces; the sorted JSON is as long as the original (the same entries, the compact form
    both write), and padded with spaces if Python's form is shorter."""
    with open(path, "r+b") as handle:
        n = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(n))
        header["__metadata__"] = dict(sorted(header.get("__metadata__", {}).items()))
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
        if len(text) <= n:
            handle.seek(8)
            handle.write(text + b" " * (n - len(text)))


def load_safetensors(path: str | Path,
                     device: str | torch.device = "cpu") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read an rsd-sci model file -> (state_dict, metadata with JSON values decoded).

    Raises InputError(path, ...) for a missing file, a file that is not safetensors (text, truncated),
    a safetensors file without rsd-sci metadata (another tool's file) and one whose tensors or metadata
    do not match the digest written with them.
    """
    return _read_model_file(path, lambda handle, name: handle.get_tensor(name), device, verify=True)


def read_model_header(path: str | Path) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """The shapes (name -> shape) and decoded metadata of an rsd-sci model file, no tensor read
    (`rsd-sci info`); the same refusals as `load_safetensors` but the digest's, which needs the tensors."""
    return _read_model_file(path, lambda handle, name: list(handle.get_slice(name).get_shape()), "cpu",
                            verify=False)


def _model_digest(tensors: Mapping[str, torch.Tensor], encoded: Mapping[str, str]) -> str:
    """`content_digest` of a model file's tensors (by name) and its metadata strings but the digest's."""
    return content_digest([sorted(tensors.items()), sorted((k, v) for k, v in encoded.items() if k != _DIGEST_KEY)])


def _read_model_file(path, read, device, verify: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """{name: read(handle, name)} and the decoded metadata of an rsd-sci safetensors file; verify: the
    entries are the tensors, checked against the file's digest (files without one are not checked)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such model file")
    try:
        with safe_open(str(path), framework="pt", device=str(device)) as handle:
            raw = handle.metadata() or {}
            entries = {name: read(handle, name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise InputError(path, f"not a safetensors model file ({_first_line(err)})") from err
    if raw.get(_FORMAT_KEY) != MODEL_FORMAT or _VERSION_KEY not in raw:
        raise InputError(path, "a safetensors file without rsd-sci metadata (not an rsd-sci model: "
                               f"expected format {MODEL_FORMAT!r})")
    if verify and _DIGEST_KEY in raw and raw[_DIGEST_KEY] != _model_digest(entries, raw):
        raise InputError(path, _DAMAGED)
    return entries, _decode_metadata(path, raw)


def _decode_metadata(path: Path, raw: Mapping[str, str]) -> dict[str, Any]:
    """Inverse of `_encode_metadata`: JSON-decode the listed keys; keep format and version (not the digest)."""
    try:
        json_keys = set(json.loads(raw.get(_JSON_KEYS_KEY, "[]")))
        meta = {key: (json.loads(value) if key in json_keys else value)
                for key, value in raw.items() if key not in (_JSON_KEYS_KEY, _DIGEST_KEY)}
    except json.JSONDecodeError as err:
        raise InputError(path, f"corrupt rsd-sci metadata ({err})") from err
    return meta
