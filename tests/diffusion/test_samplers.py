"""Samplers against closed forms: the EDM schedule, the exact ODE map of a Gaussian, Algorithm 1 written out
by hand, and truncation at the last σ_i still at or above a threshold."""

import math

import pytest
import torch

from rsd_sci.diffusion.samplers import karras_sigmas, sample_euler, sample_heun

LAMBDAS = torch.tensor([1.0, 0.5, 0.2, 0.05], dtype=torch.float64)   # eigenvalues of Σ


def gaussian_setup(seed=0):
    """Σ = U diag(λ) Uᵀ in dimension 4 and its exact denoiser D(x, σ) = Σ(Σ + σ²I)⁻¹x (per-sample σ)."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
    cov = u @ torch.diag(LAMBDAS) @ u.T

    def denoise(x, sigma):
        shrink = LAMBDAS / (LAMBDAS + sigma.double()[:, None] ** 2)      # (B, 4) in the eigenbasis
        return ((x @ u) * shrink) @ u.T

    return u, cov, denoise


def nonlinear_denoise(x, sigma):
    """A smooth made-up denoiser that is neither linear nor separable in σ."""
    s = sigma.view(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return torch.tanh(x) / (1 + s ** 2) + 0.1 * x.roll(1, dims=-1) * torch.exp(-s)


def hand_heun(denoise, noise, sigmas):
    """EDM Algorithm 1 written out plainly; returns x_N and the x0-prediction D(x_i, σ_i) of every step."""
    t = [float(s) for s in sigmas]
    x, x0s = t[0] * noise, []
    for i in range(len(t) - 1):
        s_i = torch.full((x.shape[0],), t[i])
        x0 = denoise(x, s_i)
        x0s.append(x0)
        d = (x - x0) / t[i]
        x_new = x + (t[i + 1] - t[i]) * d
        if t[i + 1] > 0:
            d2 = (x_new - denoise(x_new, torch.full((x.shape[0],), t[i + 1]))) / t[i + 1]
            x_new = x + (t[i + 1] - t[i]) * (d + d2) / 2
        x = x_new
    return x, x0s


def test_karras_sigmas_closed_form():
    s = karras_sigmas(18)
    assert s.shape == (19,) and s.dtype == torch.float32
    assert s[0].item() == pytest.approx(80.0) and s[17].item() == pytest.approx(0.002) and s[18] == 0
    assert bool((s[1:] < s[:-1]).all())
    mid = (80 ** (1 / 7) + 9 / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert s[9].item() == pytest.approx(mid, rel=1e-6)
    torch.testing.assert_close(karras_sigmas(1), torch.tensor([80.0, 0.0]))


def test_heun_and_euler_against_the_exact_ode_map():
    """For data N(0, Σ) the ODE maps σ_0·z to U diag(√(λ/(λ + σ_0²)))Uᵀ·σ_0·z exactly. Heun is 2nd order
    (doubling N divides the error by about 4), Euler 1st order (about 2)."""
    u, _, denoise = gaussian_setup()
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = ((z @ u) * torch.sqrt(LAMBDAS / (LAMBDAS + 80.0 ** 2)) * 80.0) @ u.T

    def err(sampler, n):
        return ((sampler(denoise, z, karras_sigmas(n)) - exact).norm() / exact.norm()).item()

    heun18, heun36, euler18, euler36 = err(sample_heun, 18), err(sample_heun, 36), \
        err(sample_euler, 18), err(sample_euler, 36)
    assert heun18 < 0.08 and heun36 < 0.02
    assert 3.0 < heun18 / heun36 < 6.0
    assert 1.5 < euler18 / euler36 < 2.5
    assert euler18 > 2 * heun18


@pytest.mark.parametrize("steps, tol", [(18, 0.12), (40, 0.04)])
def test_heun_gaussian_covariance(steps, tol):
    """20,000 samples of N(0, Σ) by Heun. 18 steps of the ρ = 7 schedule overshoot the variances by a
    deterministic ≈ 9.5 % (Frobenius, this Σ; the error falls as N⁻²), hence 12 % there and 4 % at 40."""
    _, cov, denoise = gaussian_setup()
    z = torch.randn(20_000, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = sample_heun(denoise, z, karras_sigmas(steps))
    emp = x.T @ x / x.shape[0]
    assert ((emp - cov).norm() / cov.norm()).item() < tol


def test_heun_is_algorithm_1_with_2n_minus_1_evaluations():
    z = torch.randn(3, 2, 5, generator=torch.Generator().manual_seed(3))
    sig = karras_sigmas(10)
    calls = []

    def counting(x, sigma):
        assert sigma.shape == (3,) and sigma.dtype == torch.float32
        calls.append(float(sigma[0]))
        return nonlinear_denoise(x, sigma)

    out = sample_heun(counting, z, sig)
    ref, _ = hand_heun(nonlinear_denoise, z, sig)
    torch.testing.assert_close(out, ref)
    levels = [float(s) for s in sig]
    assert calls == [levels[0]] + [s for s in levels[1:10] for _ in range(2)]   # last step: Euler, 1 call


def test_euler_matches_the_hand_loop():
    z = torch.randn(3, 7, generator=torch.Generator().manual_seed(4))
    sig = karras_sigmas(12)
    x = float(sig[0]) * z
    for i in range(12):
        s_i = float(sig[i])
        x = x + (float(sig[i + 1]) - s_i) * (x - nonlinear_denoise(x, torch.full((3,), s_i))) / s_i
    torch.testing.assert_close(sample_euler(nonlinear_denoise, z, sig), x)


def test_truncation_returns_the_x0_at_the_last_sigma_above():
    """truncate_at = 0.5 on the 18-step schedule: the first σ_i < 0.5 is σ_12 ≈ 0.296, so the last level
    the teacher was trained at is σ_11; the result is D(x_11, σ_11), the sampler's last call (2·11 + 1)."""
    z = torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(5))
    sig = karras_sigmas(18)
    k = next(i for i, s in enumerate(sig.tolist()) if s < 0.5)
    assert k == 12
    calls = []

    def recording(x, sigma):
        out = nonlinear_denoise(x, sigma)
        calls.append((float(sigma[0]), out))
        return out

    out = sample_heun(recording, z, sig, truncate_at=0.5)
    _, x0s = hand_heun(nonlinear_denoise, z, sig)
    torch.testing.assert_close(out, x0s[k - 1])
    assert len(calls) == 2 * (k - 1) + 1 and calls[-1][0] == float(sig[k - 1]) >= 0.5
    torch.testing.assert_close(out, calls[-1][1])


def test_truncation_per_sample_and_untruncated_samples():
    """Thresholds (B,): each sample returns the x0 of its own last σ_i above; a threshold of 0 is never
    crossed, so that sample runs to σ_N = 0. Euler the same, with its own trajectory."""
    z = torch.randn(3, 8, generator=torch.Generator().manual_seed(6))
    sig = karras_sigmas(18)
    thresholds = torch.tensor([0.5, 0.05, 0.0])
    levels = sig.tolist()
    first = [next(i for i, s in enumerate(levels) if s < 0.5) - 1, next(i for i, s in enumerate(levels) if s < 0.05) - 1]
    x_final, x0s = hand_heun(nonlinear_denoise, z, sig)
    out = sample_heun(nonlinear_denoise, z, sig, truncate_at=thresholds)
    torch.testing.assert_close(out[0], x0s[first[0]][0])
    torch.testing.assert_close(out[1], x0s[first[1]][1])
    torch.testing.assert_close(out[2], x_final[2])
    assert not torch.allclose(out[0], x_final[0], atol=1e-3)

    x, eul = float(sig[0]) * z, []
    for i in range(18):
        x0 = nonlinear_denoise(x, torch.full((3,), levels[i]))
        eul.append(x0)
        x = x + (levels[i + 1] - levels[i]) * (x - x0) / levels[i]
    out_e = sample_euler(nonlinear_denoise, z, sig, truncate_at=thresholds)
    torch.testing.assert_close(out_e[0], eul[first[0]][0])
    torch.testing.assert_close(out_e[1], eul[first[1]][1])
    torch.testing.assert_close(out_e[2], x[2])


def test_truncation_above_the_start_returns_the_first_prediction():
    z = torch.randn(2, 3, generator=torch.Generator().manual_seed(7))
    out = sample_heun(nonlinear_denoise, z, karras_sigmas(18), truncate_at=100.0)
    torch.testing.assert_close(out, nonlinear_denoise(80 * z, torch.full((2,), 80.0)))


def test_progress_and_schedule_validation():
    seen = []
    z = torch.zeros(1, 2)
    sample_heun(nonlinear_denoise, z, karras_sigmas(5), progress=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 5) for i in range(1, 6)]
    with pytest.raises(ValueError):
        sample_euler(nonlinear_denoise, z, torch.tensor([2.0, 1.0]))        # no final 0
    with pytest.raises(ValueError):
        sample_heun(nonlinear_denoise, z, torch.tensor([1.0, 2.0, 0.0]))    # not decreasing
    assert math.isfinite(sample_heun(nonlinear_denoise, z + 1, karras_sigmas(3)).sum().item())
