"""Backbones F(x_in, c_noise) for the EDM denoiser: a MONAI UNet for images, an MLP for vectors, presets.

Both map the preconditioned input x_in = [c_in·x, cond] and c_noise = ln(σ)/4 (see `precond`) to F with
x's channels:

    UNetBackbone   x_in (B, channels + cond_channels, H, W), c_noise (B,) -> (B, channels, H, W)
    MLPBackbone    x_in (B, dim + cond_dim),               c_noise (B,) -> (B, dim)

UNet: `monai.networks.nets.DiffusionModelUNet` (spatial_dims=2; ResNet blocks with a time embedding, self-
attention at the chosen levels, an output convolution initialised to zero, so F ≡ 0 and D = c_skip·x at
the start of training). MONAI's residual blocks have NO dropout (the published teachers use 0.05–0.15);
at our budgets (short runs, EMA weights) this is fine. Any H, W work: the input is ZERO-padded to a
multiple of 2^(levels − 1) (split evenly between both sides) and the output cropped back; zeros match the
convolutions' own zero padding and need no minimum size (reflection would need pad < size).

Noise-level embedding: MONAI embeds `timesteps` with the DDPM sinusoid
    emb_k = cos(t·ω_k), sin(t·ω_k),   ω_k = 10000^(−k/K), k = 0..K−1, K = channels[0]/2,
built for integer t ∈ [0, 1000). Float t work, but c_noise = ln(σ)/4 only spans about [−1.6, 1.1] for
σ ∈ [0.002, 80], where every frequency but the first few is nearly constant: the embeddings of σ = 0.01 and
σ = 10 have cosine similarity ≈ 0.89. We therefore pass t = 250·c_noise (span ≈ 660, comparable to DDPM's
1000 steps, for which the frequencies were designed): the cosine similarity drops to ≈ 0.3 while nearby σ
stay correlated in the low frequencies (a larger factor, e.g. 1000, decorrelates neighbouring steps of
the sampler's schedule as well). The factor is the keyword `c_noise_scale`.

MLP: Fourier features of c_noise, [cos(ω_k c_noise), sin(ω_k c_noise)] with fixed ω_k log-spaced in
[1, 100], are concatenated to x_in; then `depth` hidden layers of width `hidden` with SiLU; the output
layer starts at zero like the UNet's.

Presets (`rsd_sci.presets`) carry the network size and the training hyperparameters tuned for a budget.

Example:
    >>> import torch
    >>> net = build_backbone("tiny", channels=2, cond_channels=2)
    >>> net(torch.zeros(1, 4, 37, 45), torch.zeros(1)).shape
    torch.Size([1, 2, 37, 45])
    >>> 0.5e6 < count_parameters(net) < 0.9e6
    True
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from rsd_sci.errors import InputError
from rsd_sci.presets import NETWORK_KEYS, PRESETS

def count_parameters(module: nn.Module) -> int:
    """Number of scalar parameters (trainable or not) of `module`."""
    return sum(p.numel() for p in module.parameters())


class UNetBackbone(nn.Module):
    """MONAI's DiffusionModelUNet (2-D) with padding, cropping and the c_noise scaling described above.

    Args:
        channels: image channels C (the output's).
        cond_channels: extra conditioning channels Cc concatenated to the input.
        features: feature channels per level (MONAI's `channels`).
        num_res_blocks, attention_levels, num_head_channels, norm_num_groups: as in MONAI.
        c_noise_scale: factor applied to c_noise before MONAI's sinusoidal embedding.
        use_flash_attention: use torch's scaled_dot_product_attention (same parameters, less memory).
    """

    def __init__(self, channels: int, cond_channels: int = 0, *,
                 features: Sequence[int] = (32, 64, 64),         # feature channels per level
                 num_res_blocks: int | Sequence[int] = 1,        # ResNet blocks per level
                 attention_levels: Sequence[bool] = (False, False, True),  # self-attention per level
                 num_head_channels: int | Sequence[int] = 32,    # channels per attention head
                 norm_num_groups: int = 16,                      # GroupNorm groups
                 c_noise_scale: float = 250.0,                   # t = 250·ln(σ)/4 for MONAI's embedding
                 use_flash_attention: bool = True):              # fused attention kernel (SDPA)
        super().__init__()
        from monai.networks.nets import DiffusionModelUNet   # heavy import, only when a UNet is built

        self.channels = int(channels)
        self.cond_channels = int(cond_channels)
        self.c_noise_scale = float(c_noise_scale)
        self.multiple = 2 ** (len(features) - 1)   # total down-sampling factor
        self.unet = DiffusionModelUNet(
            spatial_dims=2, in_channels=self.channels + self.cond_channels, out_channels=self.channels,
            channels=tuple(features), num_res_blocks=num_res_blocks,
            attention_levels=tuple(attention_levels), num_head_channels=num_head_channels,
            norm_num_groups=norm_num_groups, use_flash_attention=use_flash_attention)

    def padding(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) zeros that bring (h, w) to multiples of `self.multiple`."""
        ph, pw = -h % self.multiple, -w % self.multiple
        return pw // 2, pw - pw // 2, ph // 2, ph - ph // 2

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """x_in (B, C + Cc, H, W), c_noise (B,) -> (B, C, H, W)."""
        h, w = x_in.shape[-2:]
        left, right, top, bottom = self.padding(h, w)
        x_pad = F.pad(x_in, (left, right, top, bottom))
        out = self.unet(x_pad, c_noise.to(torch.float32) * self.c_noise_scale)
        return out[..., top:top + h, left:left + w]


def _network_settings(preset: str | Mapping) -> dict:
    """The network keys of a preset name or dict (training keys and extras are ignored). Model files
    written before 2026-12-03 name the feature widths `channels`: read as `features`."""
    if isinstance(preset, str):
        if preset not in PRESETS:
            raise InputError(None, f"unknown network preset {preset!r}; choose from {', '.join(PRESETS)}")
        preset = PRESETS[preset]
    if "channels" in preset and "features" not in preset:
        preset = {**preset, "features": preset["channels"]}
    settings = {k: preset[k] for k in NETWORK_KEYS if k in preset}
    if "features" in settings:
        settings["features"] = tuple(settings["features"])
    return settings


def build_backbone(preset: str | Mapping, channels: int, cond_channels: int = 0) -> UNetBackbone:
    """A `UNetBackbone` sized by a preset name ("tiny", "small", "base") or a dict with the same keys.

    channels: image channels C; cond_channels: conditioning channels Cc. Forward:
    (B, C + Cc, H, W), c_noise (B,) -> (B, C, H, W).
    """
    return UNetBackbone(channels, cond_channels, **_network_settings(preset))


class MLPBackbone(nn.Module):
    """An MLP F(x_in, c_noise) for vector data (the theory checks).

    x_in (B, dim + cond_dim), c_noise (B,) -> (B, dim). The noise level enters as `n_freqs` Fourier
    features [cos(ω_k c), sin(ω_k c)], ω_k = 10^(2k/(n_freqs − 1)) ∈ [1, 100], concatenated to x_in.

    Args:
        dim: data dimension D.
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        cond_dim: conditioning entries concatenated to the data.
        n_freqs: Fourier frequencies of the noise-level embedding.
    """

    def __init__(self, dim: int, hidden: int = 256, depth: int = 2, cond_dim: int = 0,
                 n_freqs: int = 16):   # noise-level Fourier frequencies
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.dim, self.cond_dim = int(dim), int(cond_dim)
        self.register_buffer("freqs", torch.logspace(0.0, 2.0, n_freqs), persistent=False)
        widths = [dim + cond_dim + 2 * n_freqs] + [hidden] * depth
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.SiLU()]
        self.hidden_layers = nn.Sequential(*layers)
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embed(self, c_noise: torch.Tensor) -> torch.Tensor:
        """c_noise (B,) -> (B, 2·n_freqs) Fourier features."""
        args = c_noise.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        return torch.cat([args.cos(), args.sin()], dim=1)

    def forward(self, x_in: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        """x_in (B, dim + cond_dim), c_noise (B,) -> (B, dim)."""
        emb = self.embed(c_noise).to(x_in.dtype)
        return self.out(self.hidden_layers(torch.cat([x_in, emb], dim=1)))
