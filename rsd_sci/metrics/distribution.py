"""Distribution distances between two SETS of images, with no downloaded network weights.

Sliced 1-Wasserstein distance between point clouds a (N, D) and b (M, D):

    SW_1(a, b) = E_θ W_1(θᵀa, θᵀb),    θ uniform on the unit sphere S^{D−1},

estimated with n_projections random directions (seed 0 unless a generator is given, so results are
deterministic). The 1-D distance between empirical distributions of sizes N and M (N ≠ M allowed) is
exact, through the quantile functions:

    W_1(u, v) = ∫_0^1 |F_u^{-1}(q) − F_v^{-1}(q)| dq,

evaluated on the merged breakpoints {i/N} ∪ {j/M} of the two step functions (what
scipy.stats.wasserstein_distance computes).

Patch sliced Wasserstein (multi-scale) between image sets x (N, C, H, W) and y (M, C, H, W): at scale
s = 0, 1, … the images are 2×2 average-pooled s times; n_patches random patch×patch patches are drawn
from each set (images and positions with replacement, from a generator seeded seed + s), flattened to
C·patch² vectors and centred on their own mean, so the distance measures structure, not brightness;
d_s = SW_1 between the two patch sets, and the result is {"scales": [d_0, d_1, …], "mean": mean_s d_s}.

Radially averaged power spectrum of x (N, C, H, W), with F the centred orthonormal 2-D FFT and the
rings r(k) = round(|k|) about the centre (H // 2, W // 2), r = 0 … floor(min(H, W) / 2):

    P_x(r) = mean over images, channels and pixels k with r(k) = r of |F x|²(k),
    PSD(x, y) = mean_r |log10 max(P_x(r), 1e-12) − log10 max(P_y(r), 1e-12)|
(`log_spectrum_distance`, which also compares the measured-domain profiles of `Measurement.measured_power`).

All functions take tensors on any device and compute in float64 there.

Example:
    >>> import torch
    >>> a = torch.randn(100, 4, generator=torch.Generator().manual_seed(1))
    >>> sliced_wasserstein(a, a)
    0.0
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "wasserstein_1d",
    "sliced_wasserstein",
    "patch_sliced_wasserstein",
    "radial_power_spectrum",
    "power_spectrum_distance",
]

_LOG_FLOOR = 1e-12  # floor on the power before log10, so empty (zero) power stays finite


def wasserstein_1d(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Exact 1-D W_1 = ∫_0^1 |F_u^{-1}(q) − F_v^{-1}(q)| dq between empirical distributions.

    u: (..., N), v: (..., M) samples along the last dimension (N ≠ M allowed; leading dimensions
    broadcast as batches); returns (...) float64. On the interval (q_{k−1}, q_k] between consecutive
    merged breakpoints q = i/N or j/M both quantile functions are constant: with q_k = t_k / (N·M),
    t_k an integer, they take the sorted samples of 0-based index ceil(t_k / M) − 1 and ceil(t_k / N) − 1.

    Example:
        >>> import torch
        >>> float(wasserstein_1d(torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0, 2.0])))
        0.5
    """
    n, m = u.shape[-1], v.shape[-1]
    if n == 0 or m == 0:
        raise ValueError("wasserstein_1d needs at least one sample in each set")
    device = u.device
    us = torch.sort(u.to(torch.float64), dim=-1).values
    vs = torch.sort(v.to(device, torch.float64), dim=-1).values
    ticks = torch.cat([torch.arange(1, n + 1, device=device) * m, torch.arange(1, m + 1, device=device) * n])
    ticks = torch.unique(ticks)  # sorted integer breakpoints in units of 1 / (N·M); the last is N·M
    widths = torch.diff(ticks, prepend=ticks.new_zeros(1)).to(torch.float64) / (n * m)
    iu = (ticks + m - 1) // m - 1
    iv = (ticks + n - 1) // n - 1
    return ((us[..., iu] - vs[..., iv]).abs() * widths).sum(-1)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, n_projections: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced 1-Wasserstein SW_1(a, b) = E_θ W_1(θᵀa, θᵀb) between point clouds a (N, D) and b (M, D).

    θ: n_projections directions drawn uniformly on S^{D−1} (normalised Gaussians) with `generator`
    (default: a CPU generator seeded 0, so the result is deterministic); W_1 is `wasserstein_1d`.

    Example:
        >>> import torch
        >>> a = torch.zeros(50, 3)  # a shift m in D = 3: SW_1 = |m|·E|θ_1| = 0.5
        >>> sw = sliced_wasserstein(a, a + torch.tensor([0.0, 0.0, 1.0]), n_projections=4096)
        >>> 0.48 < sw < 0.52
        True
    """
    if a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"point clouds must be (N, D) and (M, D) with the same D, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    theta = torch.randn(a.shape[1], n_projections, generator=generator, device=generator.device,
                        dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).T.to(a.device)  # (P, D)
    pa = theta @ a.to(torch.float64).T  # (P, N), contiguous rows: sorting them is fast
    pb = theta @ b.to(a.device, torch.float64).T  # (P, M)
    return float(wasserstein_1d(pa, pb).mean())


def _check_image_sets(x: torch.Tensor, y: torch.Tensor) -> None:
    """ValueError unless x (N, C, H, W) and y (M, C, H, W) share C, H and W."""
    if x.dim() != 4 or y.dim() != 4 or x.shape[1:] != y.shape[1:]:
        raise ValueError(f"image sets must be (N, C, H, W) and (M, C, H, W) with the same C, H, W, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def _random_patches(x: torch.Tensor, patch: int, n_patches: int, seed: int) -> torch.Tensor:
    """(n_patches, C·patch²) mean-centred patches of x (N, C, H, W), images and positions drawn with seed."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = x.shape
    rows = torch.randint(h - patch + 1, (n_patches,), generator=g)
    cols = torch.randint(w - patch + 1, (n_patches,), generator=g)
    img = torch.randint(n, (n_patches,), generator=g)
    offs = torch.arange(patch)
    rows = (rows[:, None] + offs)[:, None, :, None].to(x.device)  # (P, 1, p, 1)
    cols = (cols[:, None] + offs)[:, None, None, :].to(x.device)  # (P, 1, 1, p)
    chans = torch.arange(c, device=x.device)[None, :, None, None]  # (1, C, 1, 1)
    patches = x[img.to(x.device)[:, None, None, None], chans, rows, cols].reshape(n_patches, -1)
    return patches - patches.mean(dim=1, keepdim=True)


def patch_sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, patch: int = 8, scales: int = 3,
                             n_patches: int = 4096, n_projections: int = 256, seed: int = 0) -> dict:
    """Multi-scale sliced Wasserstein distance on patches between image sets x (N, C, H, W) and y (M, C, H, W).

    Scale s averages 2×2 blocks s times; scales stop early once an image is smaller than the patch.
    Patches are mean-centred (structure, not brightness); both sets draw patches with seed + s and the
    directions with seed + s. Returns {"scales": [d_0, d_1, …], "mean": mean of the d_s}.

    Example:
        >>> import torch
        >>> x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> patch_sliced_wasserstein(x, x, n_patches=256, n_projections=16)
        {'scales': [0.0, 0.0, 0.0], 'mean': 0.0}
    """
    _check_image_sets(x, y)
    if min(x.shape[-2:]) < patch:
        raise ValueError(f"images of size {tuple(x.shape[-2:])} are smaller than the {patch}×{patch} patch")
    xs, ys = x.to(torch.float64), y.to(x.device, torch.float64)
    dists = []
    for s in range(scales):
        if s > 0:
            xs, ys = F.avg_pool2d(xs, 2), F.avg_pool2d(ys, 2)
        if min(xs.shape[-2:]) < patch:
            break
        px = _random_patches(xs, patch, n_patches, seed + s)
        py = _random_patches(ys, patch, n_patches, seed + s)
        g = torch.Generator().manual_seed(seed + s)
        dists.append(sliced_wasserstein(px, py, n_projections, generator=g))
    return {"scales": dists, "mean": sum(dists) / len(dists)}


def radial_power_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Radially averaged power spectrum P_x(r) of an image set x (N, C, H, W): (R,) float64 on x's device.

    |F x|² with F = fftshift ∘ fft2(norm="ortho") is averaged over images and channels, then over
    the ring of pixels k with round(|k|) = r about the centre (H // 2, W // 2), for
    r = 0 … floor(min(H, W) / 2) (R = that + 1; the corners beyond are left out).

    Example:
        >>> import torch
        >>> radial_power_spectrum(torch.ones(1, 1, 4, 4))  # all power at DC: |F 1|² = H·W there
        tensor([16.,  0.,  0.], dtype=torch.float64)
    """
    if x.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got {tuple(x.shape)}")
    h, w = x.shape[-2:]
    k = torch.fft.fftshift(torch.fft.fft2(x.to(torch.float64), norm="ortho"), dim=(-2, -1))
    power = k.abs().square().mean(dim=(0, 1)).flatten()  # (H·W,)
    ky = torch.arange(h, device=x.device, dtype=torch.float64) - h // 2
    kx = torch.arange(w, device=x.device, dtype=torch.float64) - w // 2
    radius = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2).round().long().flatten()
    n_rings = min(h, w) // 2 + 1
    keep = radius < n_rings
    sums = torch.bincount(radius[keep], weights=power[keep], minlength=n_rings)
    counts = torch.bincount(radius[keep], minlength=n_rings)
    return sums / counts


def power_spectrum_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSD(x, y) = mean_r |log10 max(P_x(r), 1e-12) − log10 max(P_y(r), 1e-12)|, P the radial power spectrum.

    x: (N, C, H, W) and y: (M, C, H, W) with the same C, H, W; returns a float (0 for equal spectra).

    Example:
        >>> import torch
        >>> x = torch.rand(2, 1, 16, 16)
        >>> power_spectrum_distance(x, x)
        0.0
        >>> round(power_spectrum_distance(x, 10 * x), 6)  # ×10 multiplies the power by 100: 2 decades
        2.0
    """
    _check_image_sets(x, y)
    return log_spectrum_distance(radial_power_spectrum(x), radial_power_spectrum(y.to(x.device)))


def log_spectrum_distance(p: torch.Tensor, q: torch.Tensor, keep: torch.Tensor | None = None) -> float:
    """mean over bins of |log10 max(p, 1e-12) − log10 max(q, 1e-12)| for two power profiles (F,), over
    the bins where `keep` (bool (F,)) is true when given (e.g. the measured k-space columns).

    Example:
        >>> import torch
        >>> log_spectrum_distance(torch.tensor([1.0, 100.0]), torch.tensor([10.0, 0.0]), torch.tensor([True, False]))
        1.0
    """
    lp = p.to(torch.float64).clamp_min(_LOG_FLOOR).log10()
    lq = q.to(device=p.device, dtype=torch.float64).clamp_min(_LOG_FLOOR).log10()
    gap = (lp - lq).abs()
    return float(gap.mean() if keep is None else gap[keep.to(gap.device)].mean())


def sample_spread(x: torch.Tensor) -> float:
    """How much the images of a set differ from one another: the per-pixel standard deviation across
    the set, averaged over pixels and channels, mean_k std_n x[n, k] (x (N, ...), N ≥ 2; float).

    A generator that gives nearly one image for every input (mode collapse) has a spread far below the
    clean images', however right each image looks; compare it with the clean set's.

    Example:
        >>> import torch
        >>> sample_spread(torch.ones(4, 1, 8, 8))   # four equal images
        0.0
        >>> round(sample_spread(torch.tensor([[0.0], [2.0]])), 4)   # std of (0, 2), N − 1 = 1
        1.4142
    """
    if x.shape[0] < 2:
        raise ValueError(f"the spread of a set needs at least 2 images, got {x.shape[0]}")
    return float(x.to(torch.float64).std(dim=0).mean())
