"""What identifies a measurement set, cheaply: recorded when a run starts, compared when it resumes.

For each split file (train.h5, test.h5): its sample count, modality, operator spec and seed (the
attributes), the dtype and per-sample shape of each dataset, and a sha256 of its per-sample scalars
(scale, offset, σ_n: N numbers each) and of the first sample of each array. That reads a few rows, not
the file, so it takes milliseconds on any set, and a set made again with other sizes, another operator,
seed or source differs in it.

    >>> what_changed({"train.h5": {"samples": 16}}, {"train.h5": {"samples": 8}})
    ('train.h5', 'samples 8, was 16')
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from rsd_sci.data.measurement_set import PER_SAMPLE_SCALARS, read_info

SPLITS = ("train.h5", "test.h5")


def set_identity(folder: str | Path) -> dict[str, Any]:
    """{split file name: its identity} for the splits the measurement-set `folder` holds (JSON values)."""
    folder = Path(folder)
    return {name: _split_identity(folder / name) for name in SPLITS if (folder / name).is_file()}


def _split_identity(path: Path) -> dict[str, Any]:
    """The attributes, dataset layouts and content digest of one split file (see the module)."""
    info = read_info(path)
    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        datasets = {name: ds for name, ds in sorted(f.items()) if isinstance(ds, h5py.Dataset)}
        layouts = {name: f"{ds.dtype} {list(ds.shape[1:])}" for name, ds in datasets.items()}
        for name, ds in datasets.items():
            if ds.shape and ds.shape[0]:
                rows = ds[:] if name in PER_SAMPLE_SCALARS else ds[0]
                digest.update(name.encode() + np.ascontiguousarray(rows).tobytes())
    return dict(samples=info.n_samples, modality=info.modality, operator=info.operator, seed=info.seed,
                arrays=layouts, content=digest.hexdigest())


def what_changed(recorded: dict[str, Any], current: dict[str, Any]) -> tuple[str, str] | None:
    """(split file name, '<what> <now>, was <before>') for the first difference between two
    `set_identity`s; None when there is none."""
    for name in dict.fromkeys([*recorded, *current]):
        before, now = recorded.get(name), current.get(name)
        if before is None or now is None:
            return name, "appeared" if before is None else "is gone"
        for key in dict.fromkeys([*before, *now]):
            if before.get(key) != now.get(key):
                return name, _difference(key, before.get(key), now.get(key))
    return None


def _difference(key: str, before: Any, now: Any) -> str:
    """One difference, in words: the first differing entry of a nested value, kept short."""
    if key == "content":
        return "its contents differ (same sizes, operator and seed)"
    if isinstance(before, dict) and isinstance(now, dict):
        for sub in dict.fromkeys([*before, *now]):
            if before.get(sub) != now.get(sub):
                return _difference(f"{key} {sub}", before.get(sub), now.get(sub))
    return f"{key} {_short(now)}, was {_short(before)}"


def _short(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
