"""Keyed random draws: a sample's numbers depend on (seed, step, index, stream) only."""

import pytest
import torch

from rsd_sci.keyed_random import PER_SAMPLE, key_seed, keyed_generator, keyed_rand, keyed_randn


def test_key_seed_is_pinned_and_63_bit():
    # Pinned values: a change of the hash would silently change every run's random draws.
    assert key_seed(0, 1, 2, 3) == 1939950132374921376
    assert key_seed(2**40, -1, 10**12, 7) == 9181551000645171780
    seeds = {key_seed(0, s, i, 0) for s in range(20) for i in range(20)}
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)
    with pytest.raises(TypeError):
        key_seed(0, 1.5)


def test_same_key_same_numbers_in_any_batch_or_order():
    a = keyed_randn(torch.tensor([5, 9, 2]), (3, 4), seed=7, step=11, stream=2)
    b = keyed_randn(torch.tensor([2, 100, 9, 5, 42]), (3, 4), seed=7, step=11, stream=2)
    assert a.shape == (3, 3, 4) and a.dtype == torch.float32
    assert torch.equal(a[0], b[3]) and torch.equal(a[1], b[2]) and torch.equal(a[2], b[0])
    # the same numbers as the generator for the documented key order (step, index, stream)
    single = torch.randn((3, 4), generator=keyed_generator(7, 11, 9, 2))
    assert torch.equal(a[1], single)
    # sharded batches (rank 0 takes [0:2], rank 1 takes [2:4]) reassemble the global draw
    keys = torch.arange(10, 14)
    whole = keyed_rand(keys, (5,), seed=1, step=3, stream=0)
    parts = torch.cat([keyed_rand(keys[:2], (5,), 1, 3, 0), keyed_rand(keys[2:], (5,), 1, 3, 0)])
    assert torch.equal(whole, parts)


def test_streams_steps_and_seeds_differ():
    keys = torch.arange(4)
    base = keyed_randn(keys, (16,), seed=0, step=1, stream=0)
    for other in (keyed_randn(keys, (16,), seed=0, step=1, stream=1),
                  keyed_randn(keys, (16,), seed=0, step=2, stream=0),
                  keyed_randn(keys, (16,), seed=1, step=1, stream=0),
                  keyed_randn(keys, (16,), seed=0, step=PER_SAMPLE, stream=0)):
        assert not torch.isclose(base, other).any()
    assert not torch.isclose(base[0], base[1]).any()  # different samples differ too


def test_normal_and_uniform_statistics():
    keys = torch.arange(200)
    z = keyed_randn(keys, (500,), seed=3, step=0, stream=0, dtype=torch.float64)
    assert z.dtype == torch.float64
    assert abs(z.mean().item()) < 0.01 and abs(z.std().item() - 1) < 0.01  # 1e5 draws: se ~ 0.003
    u = keyed_rand(keys, (500,), seed=3, step=0, stream=0)
    assert 0 <= u.min().item() and u.max().item() < 1
    assert abs(u.mean().item() - 0.5) < 0.005 and abs(u.var().item() - 1 / 12) < 0.002
    # rows are uncorrelated with each other
    corr = torch.corrcoef(z[:20])
    assert (corr - torch.eye(20, dtype=z.dtype)).abs().max() < 0.2


def test_complex_noise_has_unit_variance_per_real_component():
    c = keyed_randn(torch.arange(100), (2, 50), seed=0, step=0, stream=5, dtype=torch.complex64)
    assert c.shape == (100, 2, 50) and c.dtype == torch.complex64
    assert abs(c.real.var().item() - 1) < 0.05 and abs(c.imag.var().item() - 1) < 0.05
    assert abs(torch.corrcoef(torch.stack([c.real.flatten(), c.imag.flatten()]))[0, 1].item()) < 0.05
    with pytest.raises(ValueError):
        keyed_rand(torch.arange(2), (3,), 0, 0, 0, dtype=torch.complex64)


def test_device_and_key_validation():
    keys = torch.tensor([1, 2])
    on_cpu = keyed_randn(keys, (3,), 0, 0, 0, device="cpu")
    assert on_cpu.device.type == "cpu"
    assert keyed_randn(torch.tensor([], dtype=torch.int64), (3,), 0, 0, 0).shape == (0, 3)
    with pytest.raises(ValueError):
        keyed_randn(torch.tensor([1.0, 2.0]), (3,), 0, 0, 0)
    with pytest.raises(ValueError):
        keyed_randn(torch.tensor([[1, 2]]), (3,), 0, 0, 0)


@pytest.mark.cuda
def test_cuda_draws_equal_cpu_draws():
    keys = torch.arange(6)
    cpu = keyed_randn(keys, (4, 4), 0, 2, 1)
    gpu = keyed_randn(keys.cuda(), (4, 4), 0, 2, 1)
    assert gpu.device.type == "cuda" and torch.equal(gpu.cpu(), cpu)
