"""One process vs torchrun: device choice, sharding, no-op collectives, and a real 2-process gloo run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tests.support import engine_toy_run
from rsd_sci.engine.checkpoint import load_safetensors
from rsd_sci.engine.distributed import (DistInfo, all_reduce_mean, any_rank, barrier, cleanup,
                                        init_distributed, resolve_device, shard, wrap_ddp)
from rsd_sci.errors import InputError

TOY_SCRIPT = Path(engine_toy_run.__file__)


@pytest.fixture
def one_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    return init_distributed("cpu")


def test_one_process_without_rank(one_process):
    info = one_process
    assert info == DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"),
                            is_main=True, distributed=False)
    t = torch.arange(4.0)
    assert all_reduce_mean(t) is t and any_rank(True, info) and not any_rank(False, info)
    model = nn.Linear(2, 2)
    assert wrap_ddp(model, info) is model
    barrier()
    cleanup()


def test_device_choice(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(InputError, match="auto, cpu or cuda"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(InputError, match="no CUDA GPU"):
            resolve_device("cuda")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(InputError, match="outside"):
        init_distributed("cpu")
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(InputError, match="WORLD_SIZE"):
        init_distributed("cpu")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")  # torchrun with one process: no process group
    assert init_distributed("cpu").distributed is False


def test_shard_gives_contiguous_equal_slices():
    batch = torch.arange(12)
    infos = [DistInfo(rank=r, world_size=3, local_rank=r, device=torch.device("cpu"),
                      is_main=r == 0, distributed=True) for r in range(3)]
    parts = [shard(batch, info) for info in infos]
    assert [p.tolist() for p in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert torch.equal(torch.cat(parts), batch)
    images = torch.randn(12, 1, 4, 4)  # any tensor with the batch first
    assert torch.equal(shard(images, infos[2]), images[8:])
    assert torch.equal(shard(batch), batch)  # no process group: the whole batch
    with pytest.raises(ValueError, match="divisible"):
        shard(torch.arange(10), infos[0])


def test_two_gloo_processes_match_one_process(tmp_path, monkeypatch, one_process):
    """torchrun with 2 CPU processes (gloo, DDP, sharded global batch of 8) == one process."""
    out = tmp_path / "two.safetensors"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(TOY_SCRIPT), "--out", str(out), "--steps", "6"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    two, meta = load_safetensors(out)
    assert meta["world_size"] == 2

    toy = engine_toy_run.ToyRun(one_process, checkpoint=tmp_path / "one.ckpt")
    toy.run(6)
    one = toy.final_weights()
    assert sorted(one) == sorted(two)
    init = engine_toy_run.ToyRun(one_process).final_weights()
    for name, value in one.items():
        scale = value.abs().max().item()
        # float32 sums in another order (two half-batch gradients all-reduced) differ by a few ulps, which
        # Adam's normalisation carries into the weights (~1e-6 of the scale here); a wrong gradient average
        # or shard moves them by ~lr per step (~1e-3 of the scale)
        assert (two[name] - value).abs().max().item() <= 1e-5 * scale, name
        if name.startswith("model."):
            assert not torch.allclose(value, init[name])  # the run moved the weights
