"""An adversarial term on MEASUREMENTS against the one-step generator's collapse (AmbientGAN's idea
beside score distillation; docs/method.md, "Issue 24"): a critic tells the data image of a real measurement
from that of a synthetic one measured under the SAME operators, so it needs no clean image.

    real   v = R(y)                         y a training measurement, R the family's data image
    fake   ṽ = R(A x_g + σ_n·n)             x_g = G(z_in), the operators and σ_n of the same batch
    critic loss      L_C = mean softplus(−C(v)) + mean softplus(C(ṽ))           (non-saturating GAN)
    generator term   L_adv = mean softplus(−C(ṽ)), added as gan_weight·L_adv to 100·mean L_G

R is `Measurement.network_input` (zero-filled MRI, FBP CT, the image itself or M ⊙ y), the view the
held-out signal compares. Both sets share one batch's operators, so the critic cannot tell them apart by
the mask, only by what the images hold. The critic also sees how much the images of its batch differ
(the minibatch standard deviation of Karras et al. 2018: the per-pixel std across the batch, averaged
over channels, as one more input channel): a generator that draws nearly one image for every z is told
apart by that channel alone, so the adversarial term pushes its samples apart. Under torchrun the std is
over the GLOBAL batch (a differentiable all-gather of every rank's shard), so N processes train the critic
and the generator that one process would. Shapes: v (B, C, H, W) network channels (global B ≥ 2); logits (B,).

Example:
    >>> import torch
    >>> critic = MeasurementCritic((1, 16, 16))
    >>> critic(torch.zeros(3, 1, 16, 16)).shape
    torch.Size([3])
    >>> round(float(critic_loss(torch.zeros(2), torch.zeros(2))), 4)   # an undecided critic: 2·ln 2
    1.3863
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MeasurementCritic(nn.Module):
    """C(v) -> logits (B,): MONAI's convolutional `Discriminator` on data images of shape in_shape =
    (C, H, W) with the batch's per-pixel std as one more channel: strided 3×3 convolutions with leaky
    ReLUs, then one linear logit (no sigmoid)."""

    def __init__(self, in_shape: Sequence[int], channels: Sequence[int] = (16, 32, 64)):
        super().__init__()
        from monai.networks.nets import Discriminator

        self.in_shape = tuple(int(n) for n in in_shape)
        self.net = Discriminator(in_shape=(self.in_shape[0] + 1, *self.in_shape[1:]), channels=tuple(channels), strides=(2,) * len(channels),
                                 num_res_units=0, act=("LEAKYRELU", {"negative_slope": 0.2}), norm=None,
                                 dropout=None, last_act=None)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        v = v.float()
        spread = global_batch(v).std(dim=0, keepdim=True).mean(dim=1, keepdim=True)   # (1, 1, H, W)
        return self.net(torch.cat([v, spread.expand(v.shape[0], -1, -1, -1)], dim=1)).reshape(-1)


def global_batch(v: torch.Tensor) -> torch.Tensor:
    """Every rank's shard of the batch, concatenated (B·N, ...), with gradients reaching each rank's own
    shard (torch.distributed.nn's all-gather sums them back); `v` itself when not distributed."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return v
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(v.contiguous()), dim=0)


def critic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """L_C = mean softplus(−C(v)) + mean softplus(C(ṽ)): the critic's non-saturating loss (a scalar)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def critic_update(critic: nn.Module, opt: torch.optim.Optimizer, real: torch.Tensor, fake: torch.Tensor) -> float:
    """One step of a critic (or its DDP wrapper) on L_C, real against fake inputs (detached here); its loss."""
    loss = critic_loss(critic(real.detach()), critic(fake.detach()))
    opt.zero_grad(set_to_none=True)
    if torch.isfinite(loss):
        loss.backward()
        opt.step()
    return float(loss.detach())


def adversarial_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """L_adv = mean softplus(−C(ṽ)): the generator's non-saturating term (a scalar)."""
    return F.softplus(-fake_logits).mean()
