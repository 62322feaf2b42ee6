"""One distillation iteration: a fake-score update, then a generator update (docs/method.md, Phase 2).

    distiller = Distiller(teacher, fake, generator, fake_opt, g_opt, DistillSettings())
    metrics = distiller.iteration(m_fake, m_gen, draws_fake, draws_gen)

`m_*` are batches as `Measurement`s that define the operators (masks, centres, coil maps, σ_n, as the
teacher's batches; their measurements are never used): each update draws its own, "a fresh operator
draw". `draws_*` supply every random number (`rsd_sci.distill.draws`). The losses are written once for
every corruption: all family differences live in the measurement model (`rsd_sci.measurement`).

Fake-score update (θ frozen): x_g = G(z_in) without gradient, ỹ = A(x_g) + σ_n·n on the operator's
measured entries, and f_ψ takes one step of the TEACHER'S loss member on ỹ (its own further operator
for Ambient members): we train the fake score on the full synthetic measurement, as the teacher was
trained on the real ones, so both model the same kind of data. Gradient clipping, loss scale 1.
Generator update (ψ frozen): `losses.generator_loss` on a fresh operator and further operator, loss
scale 100·mean over the batch (the published 100/batch on a per-sample sum). `loss_space="full"`
compares x_g with the full x0-predictions instead of their projections P(·) (the networks still see
x_t = P(x_g + σ_t ε)), where any operator measures the image (CT: inside the scanned disc); `sigma_floor` keeps σ_t above a level (docs/method.md, "Distillation"). Samples with a non-finite
loss are dropped (NaN filtering) in both updates.
With a critic (`rsd_sci.distill.adversarial`, gan_weight > 0): the fake-score update also takes one
critic step on its batch's real data images R(y) against R(ỹ) of the same operators, and the generator
loss adds gan_weight·softplus(−C(R(A x_g + σ_n·n))) on the generator update's operators.
With an aligner (`rsd_sci.distill.alignment`, adm_weight > 0): the generator loss adds
adm_weight·softplus(−C_A(f_ψ)) at its x_t, then the aligner takes one step on f_φ against f_ψ there.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import torch
from torch import nn

from rsd_sci.diffusion.losses import sample_sigma, teacher_loss
from rsd_sci.diffusion.precond import SIGMA_DATA
from rsd_sci.distill.adversarial import adversarial_loss, critic_update
from rsd_sci.distill.alignment import critic_input
from rsd_sci.distill.losses import (ALPHA, SIGMA_INIT, T_MAX, finite_mean, generator_loss, generator_sigma,
                                    measure)
from rsd_sci.keyed_random import FurtherDraw, Stream
from rsd_sci.measurement import Measurement
from rsd_sci.physics.broadcast import per_sample

@dataclasses.dataclass
class DistillSettings:
    alpha: float = ALPHA               # SiD's α
    sigma_init: float = SIGMA_INIT     # the generator's input noise level
    t_max: float = T_MAX               # t ~ U[0, t_max/1000]
    g_loss_scale: float = 100.0        # generator loss = scale · mean over the batch
    fake_grad_clip: float = 1.0        # gradient-norm clip of the fake score
    bf16: bool = False                 # bf16 autocast of the network calls (physics stays float32)
    loss_space: str = "projected"      # L_G compared through P ("projected", docs/method.md) or on the full
                                       # images x_g, f_φ, f_ψ ("full", as the published MRI code does)
    sigma_floor: float = 0.0           # t drawn from [t(σ_floor), t_max/1000]: no σ_t below σ_floor
    gan_weight: float = 0.0            # weight of the critic's term in the generator loss (0: no critic)
    adm_weight: float = 0.0            # weight of the aligner's term in the generator loss (0: no aligner)


def generate(G: nn.Module, m: Measurement, draws, sigma_init: float = SIGMA_INIT,
             generator_input: Callable | None = None) -> torch.Tensor:
    """x_g = G(z_in, σ_init, c): one clean image per sample of the batch m, in network channels (B, C, H, W).

    z ~ N(0, I) of the clean image's shape; z_in, c = generator_input(σ_init·z) of a fresh further
    operator Â (Ambient teachers; docs/method.md), or `generator_input(m, z_image)` when given.
    """
    z = draws.normal(m.generator_shape()[1:], Stream.DISTILL_Z)
    m_in = draws.further(m, FurtherDraw.GENERATOR_INPUT)
    z_image = sigma_init * m.to_image(z)
    z_in, cond = generator_input(m_in, z_image) if generator_input else m_in.generator_input(z_image)
    return G(z_in, torch.full((z.shape[0],), float(sigma_init), device=z.device), cond)


class Distiller:
    """The three networks, their optimisers and the two updates.

    teacher: a `rsd_sci.diffusion.model.Model` (denoiser frozen here); fake, generator: denoisers
    (copies of the teacher, or any D(x, σ, cond) module); fake_train / generator_train: the modules
    to call for the updates that train them (e.g. DDP wrappers; default the modules themselves);
    generator_input(m, z_image) -> (z_in, cond): replaces the family's input rule (the theory check's
    linear generator takes z); critic, critic_opt (critic_train: its DDP wrapper): the measurement
    critic and its optimiser when settings.gan_weight > 0; aligner, aligner_opt (aligner_train): the
    prediction critic and its optimiser when settings.adm_weight > 0.
    """

    def __init__(self, teacher, fake: nn.Module, generator: nn.Module, fake_opt: torch.optim.Optimizer,
                 g_opt: torch.optim.Optimizer, settings: DistillSettings | None = None, *,
                 fake_train: nn.Module | None = None, generator_train: nn.Module | None = None,
                 generator_input: Callable | None = None, critic: nn.Module | None = None,
                 critic_opt: torch.optim.Optimizer | None = None, critic_train: nn.Module | None = None,
                 aligner: nn.Module | None = None, aligner_opt: torch.optim.Optimizer | None = None,
                 aligner_train: nn.Module | None = None):
        self.teacher = teacher
        self.fake, self.generator = fake, generator
        self.fake_train, self.generator_train = fake_train or fake, generator_train or generator
        self.fake_opt, self.g_opt = fake_opt, g_opt
        self.settings = settings or DistillSettings()
        self.generator_input = generator_input
        self.critic, self.critic_opt, self.critic_train = critic, critic_opt, critic_train or critic
        self.aligner, self.aligner_opt, self.aligner_train = aligner, aligner_opt, aligner_train or aligner
        if (critic is None) != (self.settings.gan_weight == 0):
            raise ValueError("a critic and its optimiser go with gan_weight > 0, and only with it")
        if (aligner is None) != (self.settings.adm_weight == 0):
            raise ValueError("an aligner and its optimiser go with adm_weight > 0, and only with it")
        teacher.denoiser.requires_grad_(False)

    def _autocast(self, device: torch.device):
        if self.settings.bf16:
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def generate(self, G: nn.Module, m: Measurement, draws) -> torch.Tensor:
        return generate(G, m, draws, self.settings.sigma_init, self.generator_input)

    def fake_step(self, m: Measurement, draws) -> dict:
        """One update of the fake score on synthetic measurements of the generator's images."""
        device = m.sigma_n.device
        with torch.no_grad(), self._autocast(device):
            x_g = self.generate(self.generator, m, draws).float()
        synthetic = m.with_y(measure(m.op, m.to_image(x_g), m.sigma_n,
                                     lambda shape: draws.normal(shape, Stream.DISTILL_Y_NOISE)))
        sigma = sample_sigma(draws.normal((), Stream.DISTILL_SIGMA))
        noise = draws.normal(synthetic.noise_shape()[1:], Stream.DISTILL_DIFFUSION)
        m_hat = draws.further(synthetic, FurtherDraw.FAKE_LOSS) if self.teacher.member == "ambient" else None
        with self._autocast(device):
            losses = teacher_loss(self.teacher.member, self.fake_train, synthetic, sigma, noise, m_hat=m_hat,
                                      sigma_data=getattr(self.fake, "sigma_data", SIGMA_DATA))   # its own σ_d
        loss, dropped = finite_mean(losses)
        self.fake_opt.zero_grad(set_to_none=True)
        if torch.isfinite(loss):
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.fake.parameters(), self.settings.fake_grad_clip)
            self.fake_opt.step()
        else:
            grad_norm = torch.tensor(float("nan"))
        out = dict(fake_loss=float(loss.detach()), fake_grad_norm=float(grad_norm), fake_dropped=dropped)
        if self.critic is not None:
            out["critic_loss"] = critic_update(self.critic_train, self.critic_opt, m.network_input(),
                                               synthetic.network_input())   # R(y) against R(ỹ)
        return out

    def generator_step(self, m: Measurement, draws) -> dict:
        """One update of the generator through the teacher and the (frozen) fake score."""
        device, s = m.sigma_n.device, self.settings
        view = draws.further(m, FurtherDraw.TEACHER_VIEW)   # P = R̂·Â (data kind: A)
        cond = view.cond()
        with self._autocast(device):
            x_g = self.generate(self.generator_train, m, draws)
        u = view.project(m.to_image(x_g.float()))
        sigma_t = generator_sigma(draws.uniform((), Stream.DISTILL_T), s.t_max, s.sigma_floor)
        eps = draws.normal(m.noise_shape()[1:], Stream.DISTILL_EPS)
        x_t = u + per_sample(sigma_t, u) * view.reproject(eps)
        with self._autocast(device):
            f_teacher = self.teacher.denoiser(x_t, sigma_t, cond)
            f_fake = self.fake(x_t, sigma_t, cond)
        seen = m.identifiable if s.loss_space == "full" else view.reproject
        if s.loss_space == "full":   # x_g itself against the full x0-predictions, where anything is measured
            losses = generator_loss(f_teacher.float(), f_fake.float(), m.identifiable(x_g.float()),
                                        m.identifiable, s.alpha)
        else:
            losses = generator_loss(f_teacher.float(), f_fake.float(), u, view.reproject, s.alpha)
        loss, dropped = finite_mean(losses)
        total, out = s.g_loss_scale * loss, {}
        if self.critic is not None:
            synthetic = measure(m.op, m.to_image(x_g.float()), m.sigma_n,
                                lambda shape: draws.normal(shape, Stream.DISTILL_CRITIC_NOISE))
            adversarial = adversarial_loss(self.critic(m.with_y(synthetic).network_input()))
            total, out = total + s.gan_weight * adversarial, dict(g_adversarial=float(adversarial.detach()))
        if self.aligner is not None:
            real, fake = critic_input(seen(f_teacher.float()), sigma_t), critic_input(seen(f_fake.float()), sigma_t)
            alignment = adversarial_loss(self.aligner(fake))
            total, out = total + s.adm_weight * alignment, out | dict(g_alignment=float(alignment.detach()))
        self.g_opt.zero_grad(set_to_none=True)
        if torch.isfinite(total):
            total.backward(inputs=list(self.generator.parameters()))
            self.g_opt.step()
        if self.aligner is not None:   # the teacher's predictions against the fake score's
            out["aligner_loss"] = critic_update(self.aligner_train, self.aligner_opt, real, fake)
        return dict(g_loss=float(loss.detach()), g_dropped=dropped) | out

    def iteration(self, m_fake: Measurement, m_gen: Measurement, draws_fake, draws_gen) -> dict:
        """A fake-score update, then a generator update; their metrics merged."""
        return self.fake_step(m_fake, draws_fake) | self.generator_step(m_gen, draws_gen)
