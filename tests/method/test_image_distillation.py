"""Method level, on images (issue 24): a one-step generator distilled from a teacher of NOISY images, with
the project's UNet, losses and `Distiller`, draws cleaner images than the noisy data and than the
teacher's own sampler integrated to σ_min.

Clean x: 16×16 binary discs (−1 outside, +1 inside, random centre and radius, a one-pixel soft edge),
seen only as y = x + 0.3·n (Denoising Score Distillation's setting, A = I). The measure of cleanness
needs no model: the mean distance of a pixel to the nearer clean level, E min(|x − 1|, |x + 1|) (clean
discs score ~0.04, from their edges).

    measured, seed 0, one thread (`python -m pytest -s tests/method/test_image_distillation.py`)
    noisy data                                   0.260
    teacher, Heun to σ_min                       0.199 (untrained below σ_n: docs/method.md)
    teacher, truncated at σ_n (its default)      0.079
    generator (EMA) after 400 iterations         0.102, asserted below 0.7× the data and the full sampler

At this size the generator does not beat the truncated sampler (0.102 against 0.079); the main jobs
hold it to that (docs/benchmarks.md). A wrong sign in L_G, a generator that gets no gradient through
x_t, a fake score that does not track the generator or a broken Tweedie member each leave the
generator at or above the noisy data.
"""

from __future__ import annotations

import copy

import torch

from rsd_sci.diffusion.losses import sample_sigma, teacher_loss
from rsd_sci.diffusion.model import Model
from rsd_sci.diffusion.networks import build_backbone
from rsd_sci.diffusion.precond import EDMDenoiser
from rsd_sci.diffusion.teacher_sampling import sample_teacher
from rsd_sci.distill.distiller import Distiller, generate
from rsd_sci.distill.draws import GeneratorDraws
from rsd_sci.engine.ema import EMA
from rsd_sci.measurement import family_of

SIZE, SIGMA_N, N_DATA, BATCH = 16, 0.3, 4_096, 32
TEACHER_STEPS, DISTILL_STEPS = 800, 400
TEACHER_LR, G_LR, FAKE_LR = 2e-3, 3e-4, 6e-4
NETWORK = dict(features=(16, 32, 32), num_res_blocks=1, attention_levels=(False, False, False),
               num_head_channels=32, norm_num_groups=8)
SPEC = {"family": "image", "shape": [SIZE, SIZE], "corruption": "noise"}


def discs(n: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 1, SIZE, SIZE) binary discs: −1 outside, +1 inside, centre in the middle 40 %, radius 12–28 %."""
    grid = torch.arange(SIZE) + 0.5
    centre = SIZE * (0.3 + 0.4 * torch.rand(n, 2, generator=gen))
    radius = SIZE * (0.12 + 0.16 * torch.rand(n, generator=gen))
    dist = ((grid[None, :, None] - centre[:, 1, None, None]) ** 2
            + (grid[None, None, :] - centre[:, 0, None, None]) ** 2).sqrt()
    return (2 * (radius[:, None, None] - dist).clamp(-0.5, 0.5))[:, None]


def distance_to_clean_levels(x: torch.Tensor) -> float:
    """E min(|x − 1|, |x + 1|): how far pixels are from the two levels of the clean images."""
    return float(torch.minimum((x - 1).abs(), (x + 1).abs()).mean())


def train_teacher(family, y: torch.Tensor, gen: torch.Generator) -> EDMDenoiser:
    """The Ambient-Tweedie teacher on the noisy images alone (Adam, batch 32), its EMA."""
    D = EDMDenoiser(build_backbone(NETWORK, 1, 0))
    opt = torch.optim.Adam(D.parameters(), lr=TEACHER_LR)
    ema = EMA(D, 50_000)
    for step in range(TEACHER_STEPS):
        idx = torch.randint(0, N_DATA, (BATCH,), generator=gen)
        m = family.measure({"y": y[idx], "sigma_n": torch.full((BATCH,), SIGMA_N)})
        noise = torch.randn(BATCH, 1, SIZE, SIZE, generator=gen)
        loss = teacher_loss("tweedie", D, m, sample_sigma(torch.randn(BATCH, generator=gen)), noise).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(D, (step + 1) * BATCH, BATCH)
    return ema.module.eval().requires_grad_(False)


def distill(teacher: Model, gen: torch.Generator) -> torch.nn.Module:
    """The generator's EMA after DISTILL_STEPS iterations of the project's Distiller (copies of the teacher)."""
    fake = copy.deepcopy(teacher.denoiser).requires_grad_(True).train()
    G = copy.deepcopy(teacher.denoiser).requires_grad_(True).train()
    distiller = Distiller(teacher, fake, G, torch.optim.Adam(fake.parameters(), lr=FAKE_LR, betas=(0.0, 0.999)),
                          torch.optim.Adam(G.parameters(), lr=G_LR, betas=(0.0, 0.999)))
    ema = EMA(G, 50_000)
    draws = GeneratorDraws(BATCH, gen)
    ops = teacher.family.measure({"y": torch.zeros(BATCH, 1, SIZE, SIZE), "sigma_n": torch.full((BATCH,), SIGMA_N)})
    for step in range(DISTILL_STEPS):
        distiller.iteration(ops, ops, draws, draws)
        ema.update(G, (step + 1) * BATCH, BATCH)
    return ema.module.eval()


def test_the_generator_draws_cleaner_images_than_the_data_and_the_full_sampler():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    y = discs(N_DATA, gen) + SIGMA_N * torch.randn(N_DATA, 1, SIZE, SIZE, generator=gen)
    family = family_of(SPEC)
    teacher = Model("teacher", train_teacher(family, y, gen), family, "tweedie")
    n = 256
    m = family.measure({"y": torch.zeros(n, 1, SIZE, SIZE), "sigma_n": torch.full((n,), SIGMA_N),
                        "index": torch.arange(n)})
    with torch.no_grad():
        full = sample_teacher(teacher, m, seed=0, truncate=False)
        truncated = sample_teacher(teacher, m, seed=0, truncate=True)
    G = distill(teacher, gen)
    with torch.no_grad():
        samples = generate(G, m, GeneratorDraws(n, torch.Generator().manual_seed(1)))
    d = {name: distance_to_clean_levels(x) for name, x in
         dict(data=y[:n], full=full, truncated=truncated, generator=samples).items()}
    print("\ndistance to the clean levels: " + ", ".join(f"{k} {v:.3f}" for k, v in d.items()))
    assert d["generator"] < 0.7 * d["data"]   # cleaner than the noisy data
    assert d["generator"] < 0.7 * d["full"]   # and than the teacher's sampler integrated to σ_min
