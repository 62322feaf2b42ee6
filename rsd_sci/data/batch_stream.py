"""Training batches read ahead of the step by worker processes, in the step order of `global_batch_indices`.

`step_batches(path, batch, seed, start, stop, workers, device)` yields the batch of every step s in
start..stop-1, in order: the same samples `load_batch(set, shard(global_batch_indices(n, batch, s, seed)))`
gives, so the draws, the order and a resumed run do not depend on `workers`. Each worker reads whole
batches (one step's samples from the HDF5 set, collated into CPU tensors); a torch DataLoader keeps
`PREFETCH` batches per worker in flight, so the reading overlaps the step. On CUDA the batches come in
pinned memory and are copied with `non_blocking`. workers 0: every batch is read in this process when
the step asks for it, as `load_batch` does.

    >>> # for s, batch in zip(range(start, stop), step_batches(path, 8, seed, start, stop, 4, device)):
    >>> #     m = family.measure(batch)
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from rsd_sci.data.batches import global_batch_indices, load_batch
from rsd_sci.data.measurement_set import MeasurementSet

PREFETCH = 2   # batches per worker read ahead (DataLoader's prefetch_factor)


class StepBatches(Dataset):
    """Item s: the collated CPU batch of step s, dict of tensors (y (b, C, H, W), masks, coil_maps, ...).

    shard(indices (B,) int64 tensor) -> this process's indices (`rsd_sci.engine.distributed.shard`); the
    set is opened on first read in each process (h5py handles must not cross a fork).
    """

    def __init__(self, path: str | Path, batch: int, seed: int, shard: Callable[[torch.Tensor], torch.Tensor]):
        self.path, self.batch, self.seed, self.shard = Path(path), batch, seed, shard
        self.n = MeasurementSet(self.path).info.n_samples
        self._set: MeasurementSet | None = None

    def indices(self, step: int) -> list[int]:
        """This process's sample indices of step `step`."""
        return self.shard(torch.from_numpy(global_batch_indices(self.n, self.batch, step, self.seed))).tolist()

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        if self._set is None:
            self._set = MeasurementSet(self.path)
        return load_batch(self._set, self.indices(step))

    def __getstate__(self) -> dict:
        return self.__dict__ | {"_set": None}


def step_batches(path: str | Path, batch: int, seed: int, start: int, stop: int, workers: int,
                 device: torch.device, shard: Callable[[torch.Tensor], torch.Tensor] = lambda i: i
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
