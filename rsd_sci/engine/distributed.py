"""One process or torchrun's N processes: device choice, process group, batch sharding, DDP.

Launch: `torchrun --nproc_per_node N $(which rsd-sci) train ...` sets RANK, WORLD_SIZE, LOCAL_RANK (and
the rendezvous address) in each worker's environment; without RANK the run is one plain process with no
process group. Backends: NCCL when the device is CUDA (one GPU per process, cuda:LOCAL_RANK), gloo on
the CPU. A world of size 1 under torchrun is run as one plain process too.

Batches are GLOBAL: every rank builds the same list of global sample indices for a step and keeps its
contiguous shard (`shard`). Random draws are keyed by global index (keyed_random), so what a sample sees
does not depend on the rank that holds it.

Gradients with DDP: each rank computes the MEAN loss over its local shard of b = B / N samples; DDP
averages the gradients over the N ranks. With equal shard sizes,
    (1/N) Σ_r ∇ (1/b) Σ_{i ∈ shard r} ℓ_i = ∇ (1/B) Σ_i ℓ_i,
the gradient of the mean loss over the global batch, i.e. exactly what one process computes on the
whole batch (up to floating-point summation order). This is why `shard` insists on B % N == 0.

Example (one process):
    >>> import torch
    >>> info = init_distributed("cpu")
    >>> info.world_size, info.is_main, info.distributed
    (1, True, False)
    >>> shard(torch.arange(8), info).tolist()
    [0, 1, 2, 3, 4, 5, 6, 7]
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from rsd_sci.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: rank in [0, world_size), local_rank on its node, its device,
    is_main (rank 0: the only process that writes files and shows progress) and distributed (a process
    group is initialised, world_size > 1)."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    is_main: bool
    distributed: bool


def _env_int(name: str, default: int | None = None) -> int:
    """An integer environment variable set by torchrun (InputError if malformed or missing)."""
    value = os.environ.get(name)
    if value is None:
        if default is None:
            raise InputError(None, f"RANK is set but {name} is not: launch with torchrun")
        return default
    try:
        return int(value)
    except ValueError as err:
        raise InputError(None, f"environment variable {name}={value!r} is not an integer") from err


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """'auto' -> cuda:local_rank if CUDA is available else cpu; 'cpu'; 'cuda' -> cuda:local_rank;
    'cuda:K' as given. InputError for CUDA without a GPU and for unknown names."""
    name = str(device).strip().lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise InputError(None, f"--device {device} but no CUDA GPU is available (use --device cpu)")
        suffix = name.split(":", 1)[1] if ":" in name else str(local_rank)
        if not suffix.isdigit():
            raise InputError(None, f"--device {device}: expected cuda or cuda:<index>")
        index = int(suffix)
        if index >= torch.cuda.device_count():
            raise InputError(None, f"--device {device}: GPU {index} does not exist "
                                   f"({torch.cuda.device_count()} visible)")
        return torch.device("cuda", index)
    raise InputError(None, f"--device must be auto, cpu or cuda, got {device!r}")


def init_distributed(device: str = "auto") -> DistInfo:
    """Set up this process: one plain process when RANK is unset, else join torchrun's process group.

    Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK set, WORLD_SIZE > 1): the device is cuda:LOCAL_RANK
    when the chosen device is CUDA (made the current device) and the backend NCCL; on the CPU, gloo.
    Calling it again in the same process reuses the existing group.
    """
    if "RANK" not in os.environ:
        dev = resolve_device(device)
        return DistInfo(rank=0, world_size=1, local_rank=0, device=dev, is_main=True, distributed=False)
    rank = _env_int("RANK")
    world_size = _env_int("WORLD_SIZE")
    local_rank = _env_int("LOCAL_RANK", default=0)
    if not 0 <= rank < world_size:
        raise InputError(None, f"RANK={rank} is outside [0, WORLD_SIZE={world_size})")
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world_size == 1:
        return DistInfo(rank=0, world_size=1, local_rank=local_rank, device=dev, is_main=True,
                        distributed=False)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size, **kwargs)
        log.info("joined process group: rank %d of %d (%s, %s)", rank, world_size, backend, dev)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=dev,
                    is_main=rank == 0, distributed=True)


def _rank_and_world(info: DistInfo | None) -> tuple[int, int]:
    """(rank, world size) from `info`, else from the initialised process group, else (0, 1)."""
    if info is not None:
        return info.rank, info.world_size
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard(global_batch: torch.Tensor, info: DistInfo | None = None) -> torch.Tensor:
    """This rank's contiguous slice of a global batch along dim 0: rows [r·b, (r+1)·b), b = B / N.

    global_batch: (B, ...) e.g. the (B,) global sample indices of a step. info: this process (default:
    the initialised process group, or one process). B must be divisible by the world size (equal shards
    keep DDP's gradient average equal to the global-batch mean); ValueError otherwise.
    """
    rank, world_size = _rank_and_world(info)
    size = int(global_batch.shape[0])
    if size % world_size != 0:
        raise ValueError(f"the global batch ({size}) must be divisible by the number of processes "
                         f"({world_size}); choose a batch that is a multiple of {world_size}")
    local = size // world_size
    return global_batch[rank * local:(rank + 1) * local]


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """The mean of `tensor` over all ranks (a new tensor; the input itself when not distributed).

    Use for metrics (the logged loss) so that every rank holds, and acts on, the same value.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank if `flag` is True on any rank (so that all ranks stop at the same step)."""
    if not info.distributed:
        return bool(flag)
    value = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


def wrap_ddp(model: nn.Module, info: DistInfo) -> nn.Module:
    """DistributedDataParallel(model) when distributed (device_ids=[local GPU] on CUDA), else `model`.

    The model must already be on info.device. DDP broadcasts rank 0's parameters at construction, so
    every rank starts from the same weights. Keep a handle to the plain model for the EMA and for saving
    (or use `.module`).
    """
    if not info.distributed:
        return model
    if info.device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[info.device.index])
    return nn.parallel.DistributedDataParallel(model)


def barrier() -> None:
    """Wait for every rank (no-op in one process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (no-op in one process); call once at the end of a run."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
