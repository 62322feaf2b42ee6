"""Training batches read ahead of the step by worker processes, in the step order of `global_batch_indices`.

`step_batches(path, batch, seed, start, stop, workers, device)` yields the batch of every step s in
start..stop-1, in order: the same samples `load_batch(set, shard(global_batch_indices(n, batch, s, seed)))`
gives, so the draws, the order and a resumed run do not depend on `workers`. Each worker reads whole
batches (one step's samples from the HDF5 set into CPU tensors, `StepBatches`); a torch DataLoader keeps
`PREFETCH` batches per worker in flight, so the reading overlaps the step. On CUDA the batches come in
pinned memory and are copied with `non_blocking`. workers 0: every batch is read in this process when
the step asks for it, as `load_batch` does.

    >>> # for s, batch in zip(range(start, stop), step_batches(path, 8, seed, start, stop, 4, device)):
    >>> #     m = family.measure(batch)
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from rsd_sci.data.batches import SCALAR_KEYS, TENSOR_KEYS, global_batch_indices
from rsd_sci.data.measurement_set import MASK_KEYS, MeasurementSet

PREFETCH = 2       # batches per worker read ahead (DataLoader's prefetch_factor)
CUDA_WORKERS = 4   # the default on CUDA: ~2x what an H100 takes of the fastMRI recipe (docs/benchmarks.md)


def resolve_workers(workers: int | None, device: torch.device) -> int:
    """`TrainConfig.loader_workers`: the user's, else CUDA_WORKERS on CUDA and 0 on the CPU (where workers
    would take cores from the step)."""
    if workers is not None:
        return workers
    return CUDA_WORKERS if device.type == "cuda" else 0


class StepBatches(Dataset):
    """Item s: the CPU batch of step s, `load_batch`'s dict of tensors (y (b, C, H, W) complex64, masks and
    centers bool, coil_maps, sigma_n, scale, offset (b,) float32, index (b,) int64).

    Each array is read straight into one batch-sized buffer (h5py `read_direct`, no per-sample arrays
    and no stacking copy); in a DataLoader worker the buffers are shared memory, so handing the batch to
    the training process copies nothing. The per-sample scalars are read once per process.
    shard(indices (B,) int64 tensor) -> this process's indices (`rsd_sci.engine.distributed.shard`); the
    set is opened on first read in each process (h5py handles must not cross a fork).
    """

    def __init__(self, path: str | Path, batch: int, seed: int, shard: Callable[[torch.Tensor], torch.Tensor]):
        self.path, self.batch, self.seed, self.shard = Path(path), batch, seed, shard
        self.n = MeasurementSet(self.path).info.n_samples
        self._set: MeasurementSet | None = None
        self._scalars: dict[str, torch.Tensor] = {}

    def indices(self, step: int) -> list[int]:
        """This process's sample indices of step `step`."""
        return self.shard(torch.from_numpy(global_batch_indices(self.n, self.batch, step, self.seed))).tolist()

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        if self._set is None:
            self._set = MeasurementSet(self.path)
            self._scalars = {k: torch.from_numpy(self._set.column(k).astype(np.float32)) for k in SCALAR_KEYS}
        indices = self.indices(step)
        shared = get_worker_info() is not None
        f = self._set._handle()
        batch = {}
        for key in self._set.keys():
            ds = f[key]
            is_mask = key in MASK_KEYS
            out = empty((len(indices), *ds.shape[1:]), torch.uint8 if is_mask else TORCH_DTYPES[ds.dtype.str],
                        shared)
            target = out.numpy()
            for row, i in enumerate(indices):
                ds.read_direct(target, np.s_[i], np.s_[row])
            batch[TENSOR_KEYS[key]] = out.view(torch.bool) if is_mask else out
        rows = torch.tensor(indices, dtype=torch.int64)
        return batch | {k: v[rows] for k, v in self._scalars.items()} | {"index": rows}

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_set": None, "_scalars": {}}


TORCH_DTYPES = {"<c8": torch.complex64, "<c16": torch.complex128, "<f4": torch.float32, "<f8": torch.float64}


def empty(shape: tuple, dtype: torch.dtype, shared: bool) -> torch.Tensor:
    """An uninitialised tensor, in shared memory when `shared` (what a worker hands over without a copy)."""
    if not shared:
        return torch.empty(shape, dtype=dtype)
    storage = torch.UntypedStorage._new_shared(math.prod(shape) * dtype.itemsize)
    return torch.empty(0, dtype=dtype).set_(storage, 0, shape)


def whole(indices: torch.Tensor) -> torch.Tensor:
    """The shard of a single process: the whole global batch."""
    return indices


def step_batches(path: str | Path, batch: int, seed: int, start: int, stop: int, workers: int,
                 device: torch.device, shard: Callable[[torch.Tensor], torch.Tensor] = whole
                 ) -> Iterator[dict[str, torch.Tensor]]:
    """The batches of steps start..stop-1 in order, on `device`, read by `workers` processes ahead."""
    dataset = StepBatches(path, batch, seed, shard)
    if workers == 0:
        for step in range(start, stop):
            yield collate_to(dataset[step], device)
        return
    loader = DataLoader(dataset, batch_size=None, sampler=range(start, stop), num_workers=workers,
                        prefetch_factor=PREFETCH, pin_memory=device.type == "cuda")
    for cpu_batch in loader:
        yield collate_to(cpu_batch, device)


def collate_to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's tensors on `device` (non-blocking from pinned memory)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
