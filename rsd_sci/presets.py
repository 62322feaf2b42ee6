"""Presets: the network size and the training settings tuned for one budget, beside the config.

Each preset holds the backbone's keys (`NETWORK_KEYS`: `features` are the UNet's feature widths per
level; the image channels are the data's and `build_backbone` is given them) and the training keys that
`rsd_sci.config.TrainConfig` takes from it where the user gave none (lr, batch, steps, warm-up, EMA,
clipping, distillation rates and iterations, held-out slices of the evaluation).
"""

from __future__ import annotations

NETWORK_KEYS = ("features", "num_res_blocks", "attention_levels", "num_head_channels", "norm_num_groups")

# ~0.69 M parameters; ~0.2 s per training step (forward + backward, batch 8, 64×64, 2 + 2 channels) on a
# 2-core CPU: the README's main job, sized so that teacher, distillation and evaluation fit 15 minutes.
TINY = dict(
    features=(16, 32, 64),              # feature channels per level (64 → 32 → 16 pixels at 64×64);
                                        # half the first widths of (32, 64, 64): 2.2x faster a step,
                                        # spent on 2,000 steps instead of 600
                                        # (docs/method.md, "The main job's budget")
    num_res_blocks=1,                   # ResNet blocks per level (the up path has one more)
    attention_levels=(False, False, True),  # self-attention at the coarsest level only
    num_head_channels=32,               # channels per attention head (2 heads at 64)
    norm_num_groups=8,                  # GroupNorm groups (2 channels per group at 16)
    lr=5e-4,                            # Adam rate; larger than published 1e-4–2e-4 for a short run
    batch=8,                            # images per step
    steps=2000,                         # teacher steps
    warmup_steps=60,                    # linear lr warm-up, 3 % of the run (a short `--steps` run still
                                        # reaches the full rate)
    ema_half_life_images=500_000,       # published 0.5 Mimg; the EMA ramp shortens it early in a run
    grad_clip=1.0,                      # global gradient-norm clip
    distill_steps=400,                  # distillation iterations: at 200 the MRI generator passed its
                                        # teacher on one 2,400-step teacher of two, at 400 on both
    g_lr=6e-5,                          # generator rate; larger than published (1e-6–1e-5): short runs
    fake_lr=1.5e-4,                     # fake-score rate; both 3x the first CPU settings, which left the
                                        # generator smoother than its teacher (docs/method.md)
    alpha=1.2, sigma_init=2.5, t_max=800,   # published (docs/method.md)
    loss_space="auto",                  # L_G on full images for MRI, through P (docs/method.md) otherwise:
                                        # the measured winners (docs/method.md, "Distillation")
    sigma_floor=0.0,                    # σ_t from the whole published range
    fake_updates=1,                     # fake-score updates per generator update (published: 1)
    fake_warmup=0,                      # the generator moves from the first iteration (published)
    gan_weight=1e4,                     # the measurement critic's term (published: none): the SiD term's
                                        # gradient is ~3e4x an untrained critic's; at 1e4 the CT generator
                                        # kept the clean spread (0.121 against 0.124; 0.06 without) and the
                                        # MRI one reached SW 0.0120 against 0.0208 (docs/method.md)
    eval_slices=8,                      # held-out slices the main job reconstructs
)

PRESETS: dict[str, dict] = {
    "tiny": TINY,
    # the first tiny network, (32, 64, 64), ~1.1 M parameters, trained longer: `benchmarks/quality.py`
    # on a CPU (about an hour for a run)
    "quality": dict(TINY,
                    features=(32, 64, 64),
                    norm_num_groups=16,
                    steps=2400,             # 16-29 min on 2 CPU cores (0.41-0.72 s a step)
                    warmup_steps=240,
                    distill_steps=400,      # MRI: closest to clean at 300-400 (docs/method.md)
                    eval_slices=32),        # the whole phantom test set
    # ~9.3 M parameters; a GPU (or a long CPU run).
    "small": dict(
        features=(64, 128, 128, 128),
        num_res_blocks=2,
        attention_levels=(False, False, True, True),
        num_head_channels=64,
        norm_num_groups=32,
        lr=2e-4,                            # the upper published rate
        batch=32,
        steps=20_000,                       # ~0.6 Mimg
        warmup_steps=1_000,                 # ~5 % of the run
        ema_half_life_images=500_000,       # published
        grad_clip=1.0,
        distill_steps=10_000,
        g_lr=1e-5,
        fake_lr=2e-5,
        alpha=1.2, sigma_init=2.5, t_max=800, loss_space="auto", sigma_floor=0.0,
        fake_updates=1, fake_warmup=0, gan_weight=0.0, eval_slices=32,
    ),
    # ~49 M parameters (the size of the published CIFAR/CelebA teachers); GPU.
    "base": dict(
        features=(128, 256, 256, 256),
        num_res_blocks=3,
        attention_levels=(False, False, True, True),
        num_head_channels=64,
        norm_num_groups=32,
        lr=1e-4,                            # the lower published rate for the larger network
        batch=64,
        steps=100_000,                      # ~6.4 Mimg
        warmup_steps=5_000,                 # published teachers warm up for long
        ema_half_life_images=500_000,       # published
        grad_clip=1.0,
        distill_steps=50_000,
        g_lr=5e-6,                          # published rates: 1e-6 to 1e-5
        fake_lr=1e-5,
        alpha=1.2, sigma_init=2.5, t_max=800, loss_space="auto", sigma_floor=0.0,
        fake_updates=1, fake_warmup=0, gan_weight=0.0, eval_slices=64,
    ),
    # ~18.6 M parameters: MONAI's UNet sized to the published fastMRI teacher, EDM's DDPM++ with channel
    # multipliers 1,1,1,1 (128 channels at every level, 4 blocks per level; its attention at 16×16 is
    # never reached at 384×384 in 4 levels); no dropout (MONAI has none; published 0.1). The rates,
    # batch, clip and SiD settings are the published ones (recipes/fastmri-brain-r4.yaml, docs/method.md,
    # "The published fastMRI recipe"); steps, warm-up, EMA and evaluation are rsd-sci's (not published).
    "fastmri": dict(
        features=(128, 128, 128, 128),
        num_res_blocks=4,
        attention_levels=(False, False, False, False),
        num_head_channels=64,
        norm_num_groups=32,
        lr=2e-4,                            # published teacher rate
        batch=8,                            # published teacher batch (distillation: 24, a second command)
        steps=100_000,                      # 0.8 Mimg; not published
        warmup_steps=5_000,                 # not published
        ema_half_life_images=500_000,       # EDM's
        grad_clip=1.0,                      # published, both stages
        distill_steps=20_000,               # not published
        g_lr=1e-6,                          # published
        fake_lr=5e-6,                       # published
        alpha=1.2, sigma_init=2.5, t_max=800,   # published
        loss_space="auto",                  # full images for MRI, as the published MRI code compares them
        sigma_floor=0.0,
        fake_updates=1, fake_warmup=0,      # published: one fake update per generator update from the start
        gan_weight=0.0,                     # published: no critic
        eval_slices=32,
    ),
}
