"""EMA with a half-life in images and a ramp: hand computation, early following, buffers, state."""

import math

import pytest
import torch
from torch import nn

from rsd_sci.engine.ema import EMA, ema_beta


class Scalar(nn.Module):
    def __init__(self, value: float):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(value, dtype=torch.float64))


def test_beta_formula():
    # h = min(half_life, ramp * images_seen); beta = 0.5 ** (batch / h)
    assert ema_beta(10, 10, half_life_images=100, ramp=0.5) == pytest.approx(0.25)      # h = 5
    assert ema_beta(1000, 10, half_life_images=100, ramp=0.5) == pytest.approx(0.5 ** 0.1)  # h = 100
    assert ema_beta(0, 10, 500_000) == 0.0  # nothing seen: h = 0 -> the EMA is the model
    assert ema_beta(10**9, 8, 500_000) == pytest.approx(0.5 ** (8 / 500_000))  # published 0.5 Mimg


def test_scalar_parameter_matches_hand_computation():
    model = Scalar(2.0)
    ema = EMA(model, half_life_images=100, ramp=0.5)
    batch = 10
    expected = 2.0
    # (model value after the step, images seen, beta by hand)
    schedule = [(0.0, 10, 0.25),                 # h = 5:  0.5 ** (10 / 5)
                (1.0, 20, 0.5),                  # h = 10
                (4.0, 30, 0.5 ** (10 / 15)),     # h = 15
                (-1.0, 1000, 0.5 ** (10 / 100))]  # h capped at the half-life
    for value, seen, beta in schedule:
        with torch.no_grad():
            model.w.fill_(value)
        used = ema.update(model, images_seen=seen, batch_size=batch)
        expected = beta * expected + (1 - beta) * value
        assert used == pytest.approx(beta, rel=1e-12)
        assert ema.module.w.item() == pytest.approx(expected, rel=1e-12)
    # written out for the first two steps: 0.25·2 + 0.75·0 = 0.5, then 0.5·0.5 + 0.5·1 = 0.75
    assert math.isclose(0.5 * (0.25 * 2.0) + 0.5 * 1.0, 0.75)


def test_early_training_follows_the_model_not_frozen_at_init():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    init = model.weight.detach().clone()
    ramped = EMA(model, 500_000)  # published 0.5 Mimg half-life with the 5 % ramp
    plain = EMA(model, 500_000, ramp=1e9)  # no ramp: half-life 0.5 Mimg from the first image
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    for step in range(30):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
        ramped.update(model, images_seen=(step + 1) * 8, batch_size=8)
        plain.update(model, images_seen=(step + 1) * 8, batch_size=8)
    moved = (model.weight - init).norm().item()
    assert moved > 0.1
    assert (ramped.module.weight - model.weight).norm().item() < 0.1 * moved  # follows
    assert (plain.module.weight - init).norm().item() < 1e-3 * moved           # frozen without a ramp
    assert not ramped.module.weight.requires_grad and not ramped.module.training


def test_buffers_are_copied_not_averaged():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = EMA(model, half_life_images=1e6, ramp=1e6)  # beta ~ 1: parameters barely move
    weight_before = ema.module[0].weight.detach().clone()
    model.train()
    model(torch.randn(16, 2) * 3 + 5)  # updates running stats and num_batches_tracked
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model, images_seen=16, batch_size=16)
    bn, ema_bn = model[1], ema.module[1]
    assert torch.equal(ema_bn.running_mean, bn.running_mean)
    assert torch.equal(ema_bn.running_var, bn.running_var)
    assert ema_bn.num_batches_tracked.item() == 1
    assert torch.allclose(ema.module[0].weight, weight_before, atol=1e-4)


def test_state_dict_round_trip_and_validation():
    model = Scalar(1.0)
    ema = EMA(model, 500_000)
    with torch.no_grad():
        model.w.fill_(3.0)
    ema.update(model, images_seen=8, batch_size=8)
    other = EMA(Scalar(0.0), 500_000)
    other.load_state_dict(ema.state_dict())
    assert torch.equal(other.module.w, ema.module.w)
    assert model.w.item() == 3.0  # the model itself is never touched
    with pytest.raises(ValueError):
        EMA(model, half_life_images=-1)
