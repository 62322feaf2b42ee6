"""Training batches from a measurement set: which samples a step uses, and how they become tensors.

The global batch of step s is a slice of a seeded permutation of the training split (a new permutation
each epoch), so it depends only on (seed, step, batch size, N), never on the number of processes; each
process then takes its contiguous shard (`rsd_sci.engine.distributed.shard`).

    >>> global_batch_indices(n=10, batch=4, step=0, seed=0).tolist() == global_batch_indices(10, 4, 0, 0).tolist()
    True
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from rsd_sci.data.measurement_set import MeasurementSet

TENSOR_KEYS = {"measurements": "y", "masks": "masks", "centers": "centers", "coil_maps": "coil_maps",
               "targets": "targets"}
SCALAR_KEYS = ("sigma_n", "scale", "offset")


def global_batch_indices(n: int, batch: int, step: int, seed: int) -> np.ndarray:
    """The training-sample indices (batch,) of `step`: epochs of seeded permutations, wrapped."""
    start = step * batch
    out = np.empty(batch, np.int64)
    filled = 0
    while filled < batch:
        epoch, offset = divmod(start + filled, n)
        perm = np.random.default_rng((seed, epoch)).permutation(n)
        take = min(batch - filled, n - offset)
        out[filled:filled + take] = perm[offset:offset + take]
        filled += take
    return out


def collate(samples: Sequence[dict], device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """Samples (`MeasurementSet.__getitem__` dicts) -> a batch dict of tensors (the teacher's contract)."""
    batch: dict[str, torch.Tensor] = {}
    for key, name in TENSOR_KEYS.items():
        if key in samples[0]:
            batch[name] = torch.from_numpy(np.stack([s[key] for s in samples])).to(device)
    for key in SCALAR_KEYS:
        batch[key] = torch.tensor([s[key] for s in samples], dtype=torch.float32, device=device)
    batch["index"] = torch.tensor([s["index"] for s in samples], dtype=torch.int64, device=device)
    return batch


def load_batch(ms: MeasurementSet, indices: Sequence[int], device: torch.device | str = "cpu") -> dict:
    """Read `indices` lazily from the set and collate them."""
    return collate([ms[int(i)] for i in indices], device)
