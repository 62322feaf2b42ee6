"""Backbones: preset sizes, padding and cropping of odd sizes, the c_noise scaling, the MLP."""

import math
import time


import pytest
import torch
import torch.nn.functional as F

from rsd_sci.diffusion.networks import MLPBackbone, UNetBackbone, build_backbone, count_parameters
from rsd_sci.errors import InputError
from rsd_sci.presets import PRESETS

SMALL_NET = dict(features=(16, 32, 32), num_res_blocks=1, attention_levels=(False, False, True),
                 num_head_channels=16, norm_num_groups=8)


def randomise(module, seed=0):
    """MONAI zero-initialises the output convolution; give every parameter a random value."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.2 * torch.randn(p.shape, generator=g))


def test_tiny_preset_size_and_cpu_step_time():
    torch.manual_seed(0)
    net = build_backbone("tiny", channels=2, cond_channels=2)
    n = count_parameters(net)
    assert 0.5e6 < n < 0.9e6
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)
    x, c = torch.randn(8, 4, 64, 64), torch.randn(8)
    times = []
    for _ in range(4):   # the first steps warm up allocator and kernels; report the fastest of the last two
        t0 = time.perf_counter()
        loss = (net(x, c) - x[:, :2]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    print(f"tiny preset: {n / 1e6:.2f} M parameters, {min(times[2:]):.3f} s per training step "
          f"(batch 8, 64x64, 2 + 2 channels, {torch.get_num_threads()} threads)")


@pytest.mark.parametrize("name, low, high", [("quality", 0.8e6, 1.5e6), ("small", 5e6, 15e6), ("base", 35e6, 60e6),
                                             ("fastmri", 15e6, 25e6)])
def test_larger_preset_sizes(name, low, high):
    with torch.device("meta"):   # counts shapes without allocating memory
        net = build_backbone(name, channels=2, cond_channels=2)
    assert low < count_parameters(net) < high


def test_presets_carry_training_hyperparameters():
    from rsd_sci.config import TrainConfig

    for name, p in PRESETS.items():
        cfg = TrainConfig(preset=name).resolved()
        for key in ("lr", "batch", "steps", "warmup_steps", "ema_half_life_images", "grad_clip"):
            assert getattr(cfg, key) > 0, (name, key)
        assert cfg.warmup_steps < cfg.steps
        assert len(p["features"]) == len(p["attention_levels"])
    assert PRESETS["tiny"]["steps"] <= PRESETS["quality"]["steps"] and PRESETS["tiny"]["batch"] == 8


def test_odd_size_is_zero_padded_and_cropped_back():
    """37×45 with 3 levels (multiple 4): pads (1, 2) rows and (1, 2) columns of zeros; the wrapper's output
    equals MONAI's UNet run on the hand-padded input, cropped."""
    torch.manual_seed(0)
    net = UNetBackbone(2, 1, **SMALL_NET)
    randomise(net)
    assert net.multiple == 4 and net.padding(37, 45) == (1, 2, 1, 2) and net.padding(40, 48) == (0, 0, 0, 0)
    x, c = torch.randn(2, 3, 37, 45), torch.tensor([-1.0, 0.5])
    with torch.no_grad():
        out = net(x, c)
        ref = net.unet(F.pad(x, (1, 2, 1, 2)), 250 * c)[..., 1:38, 1:46]
    assert out.shape == (2, 2, 37, 45)
    torch.testing.assert_close(out, ref)
    assert out.abs().mean() > 1e-3   # randomised weights: a real output, not the zero initialisation


def sinusoid_similarity(sigma_a: float, sigma_b: float, dim: int = 32, c_noise_scale: float = 250.0) -> float:
    """Cosine similarity of MONAI's timestep embeddings of two noise levels, t = c_noise_scale·ln(σ)/4."""
    from monai.networks.nets.diffusion_model_unet import get_timestep_embedding

    t = torch.tensor([math.log(sigma_a), math.log(sigma_b)]) / 4 * c_noise_scale
    e = get_timestep_embedding(t, dim)
    return float(torch.nn.functional.cosine_similarity(e[0], e[1], dim=0))


def test_c_noise_is_scaled_before_monai_embedding():
    """MONAI receives t = 250·c_noise; with it, σ = 0.01 and σ = 10 get clearly different embeddings."""
    net = UNetBackbone(1, 0, **SMALL_NET)
    seen = {}
    net.unet.register_forward_pre_hook(lambda m, args: seen.update(t=args[1].clone()))
    c = torch.log(torch.tensor([0.01, 10.0])) / 4
    net(torch.zeros(2, 1, 8, 8), c)
    torch.testing.assert_close(seen["t"], 250 * c)
    assert sinusoid_similarity(0.01, 10.0, dim=32) < 0.5
    assert sinusoid_similarity(0.01, 10.0, dim=32, c_noise_scale=1.0) > 0.8   # why we scale


def test_output_depends_on_noise_level():
    torch.manual_seed(1)
    net = UNetBackbone(1, 0, **SMALL_NET)
    randomise(net, seed=1)
    x = torch.randn(1, 1, 16, 16).expand(2, -1, -1, -1)
    with torch.no_grad():
        out = net(x, torch.log(torch.tensor([0.01, 10.0])) / 4)
    assert (out[0] - out[1]).norm() > 0.05 * out[0].norm()


def test_preset_from_dict_ignores_training_and_extra_keys():
    cfg = dict(features=(16, 32), num_res_blocks=1, attention_levels=(False, False), num_head_channels=16,
               norm_num_groups=8, lr=1e-3, distill_lr=1e-5)
    net = build_backbone(cfg, channels=1)
    assert net.multiple == 2
    assert net(torch.zeros(1, 1, 5, 7), torch.zeros(1)).shape == (1, 1, 5, 7)


def test_model_files_naming_features_channels_still_build():
    """Network metadata written before the rename names the feature widths `channels`: the same network."""
    new = dict(features=(16, 32), num_res_blocks=1, attention_levels=(False, False), num_head_channels=16,
               norm_num_groups=8)
    old = {("channels" if k == "features" else k): v for k, v in new.items()}
    torch.manual_seed(0)
    a = build_backbone(new, channels=2, cond_channels=1)
    torch.manual_seed(0)
    b = build_backbone(old, channels=2, cond_channels=1)
    assert a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


def test_unknown_preset_is_an_input_error():
    with pytest.raises(InputError, match="tiny"):
        build_backbone("huge", channels=1)


def test_mlp_parameter_count_shape_and_noise_dependence():
    mlp = MLPBackbone(4, hidden=8, depth=2, cond_dim=3, n_freqs=16)
    assert count_parameters(mlp) == (4 + 3 + 32) * 8 + 8 + 8 * 8 + 8 + 8 * 4 + 4
    assert count_parameters(torch.nn.Linear(3, 2)) == 8
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 7, generator=g).expand(2, -1)
    assert mlp(x, torch.zeros(2)).abs().max() == 0   # zero-initialised output layer
    randomise(mlp)
    out = mlp(x, torch.log(torch.tensor([0.01, 10.0])) / 4)
    assert out.shape == (2, 4) and (out[0] - out[1]).norm() > 0.05 * out[0].norm()
    with pytest.raises(ValueError):
        MLPBackbone(4, depth=0)
