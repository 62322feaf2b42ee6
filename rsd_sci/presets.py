"""Presets: the network size and the training settings tuned for one budget, beside the config.

Each preset holds the backbone's keys (`NETWORK_KEYS`: `features` are the UNet's feature widths per
level; the image channels are the data's and `build_backbone` is given them) and the training settings
it tunes, which `rsd_sci.config.TrainConfig` takes where the user gave none: lr, batch, steps, warm-up,
distillation rates and iterations, held-out slices of the evaluation, and any of TrainConfig's own
values it overrides (the EMA half-life, the clip, SiD's α, σ_init and t_max, the loss space, the σ_t
floor, fake-score updates and warm-up, the critic's weight: `setting(preset=...)` there). The reasons
and the measurements behind the values: docs/method.md, Phase 2 and "The main job's budget".
"""

from __future__ import annotations

NETWORK_KEYS = ("features", "num_res_blocks", "attention_levels", "num_head_channels", "norm_num_groups")

# ~0.69 M parameters: the README's main job, sized so that teacher, distillation and evaluation fit 15
# minutes on a 2-core CPU (docs/method.md, "The main job's budget").
TINY = dict(
    features=(16, 32, 64),              # feature channels per level (64 → 32 → 16 pixels at 64×64);
                                        # half the first widths of (32, 64, 64): the time a step saves
                                        # buys more steps (docs/method.md, "The main job's budget")
    num_res_blocks=1,                   # ResNet blocks per level (the up path has one more)
    attention_levels=(False, False, True),  # self-attention at the coarsest level only
    num_head_channels=32,               # channels per attention head (2 heads at 64)
    norm_num_groups=8,                  # GroupNorm groups (2 channels per group at 16)
    lr=5e-4,                            # Adam rate; larger than published 1e-4–2e-4 for a short run
    batch=8,                            # images per step
    steps=2000,                         # teacher steps
    warmup_steps=60,                    # linear lr warm-up, 3 % of the run (a short `--steps` run still
                                        # reaches the full rate)
    distill_steps=400,                  # distillation iterations: fewer were not reliable
                                        # (docs/method.md, "Distillation: 400 iterations")
    g_lr=6e-5,                          # generator rate; larger than published (1e-6–1e-5): short runs
    fake_lr=1.5e-4,                     # fake-score rate; at the first CPU settings the generator stayed
                                        # smoother than its teacher (docs/method.md, Phase 2, "Rates 3x")
    gan_weight=1e4,                     # the measurement critic's term (published: none), weighted to
                                        # match the SiD term's gradient: it keeps the samples as varied as
                                        # the clean images (docs/method.md, "Issue 24")
    eval_slices=8,                      # held-out slices the main job reconstructs
)

PRESETS: dict[str, dict] = {
    "tiny": TINY,
    # the first tiny network, (32, 64, 64), ~1.1 M parameters, trained longer: `benchmarks/quality.py`
    # on a CPU (about an hour for a run)
    "quality": dict(TINY,
                    features=(32, 64, 64),
                    norm_num_groups=16,
                    steps=2400,             # the teacher of docs/benchmarks.md, "Quality"
                    warmup_steps=240,
                    distill_steps=400,      # MRI (docs/method.md, Phase 2, "The `quality` preset")
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
        distill_steps=10_000,
        g_lr=1e-5,
        fake_lr=2e-5,
        eval_slices=32,
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
        distill_steps=50_000,
        g_lr=5e-6,                          # published rates: 1e-6 to 1e-5
        fake_lr=1e-5,
        eval_slices=64,
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
        distill_steps=20_000,               # not published
        g_lr=1e-6,                          # published
        fake_lr=5e-6,                       # published
        eval_slices=32,
        # the rest are TrainConfig's own values, the published ones: EDM's EMA, the clip of 1 in both
        # stages, α, σ_init and t_max, one fake update per generator update from the start, no critic;
        # loss_space "auto" compares full images for MRI, as the published MRI code does
    ),
}
