"""The parallel-beam system matrix T and its transpose, built once per geometry and cached.

Geometry (the same as `skimage.transform.radon(image, theta, circle=True)`): an N×N image of unit
pixels, rotation centre c = N // 2 in both axes, N detectors of unit width with the centre at index c,
angles θ_k = k·180°/n_angles (k = 0 … n_angles − 1). The pixel in row i, column j sits at
u = j − c, v = i − c and projects onto the detector coordinate

    t(θ) = u·cos θ − v·sin θ,        detector index d = t + c.

Discretisation: pixel-driven with linear interpolation ("splatting"): a pixel's value is split between
the detectors ⌊d⌋ and ⌊d⌋ + 1 with weights 1 − (d − ⌊d⌋) and d − ⌊d⌋, so every column of T sums to
one per angle (unit pixel area) except where a weight falls off the last detector. Only pixels inside the
inscribed circle (u² + v² ≤ c², the circle skimage assumes with circle=True) are projected; the others
are in T's null space. T^T is then exactly the linear-interpolation back-projection of
`skimage.transform.iradon` (but for the outermost pixel ring when N is even, which iradon interpolates
towards a detector bin beyond the last one, filled by its padding). Relative L2 difference to skimage's radon (bilinear rotation, then a sum):
about 1 % on a Shepp–Logan phantom (tests/physics/test_ct.py states the tolerance).

Storage: torch sparse CSR with int32 indices. T has n_angles·N rows (row k·N + d is view k, detector d)
and N² columns (row-major pixels); T^T is stored separately so that both A and A^T are row gathers
(CSR @ dense), and autograd uses the other matrix for the backward pass. Size for N = 256, 180 views:
18.4 M non-zeros, about 150 MB per matrix in float32; construction ≈ 2 s (numpy, chunked over pixels).

Example:
    >>> T, Tt = system_matrices(8, 4, torch.float64, torch.device("cpu"))
    >>> tuple(T.shape), tuple(Tt.shape)
    ((32, 64), (64, 32))
"""

from __future__ import annotations

import functools
import logging
import warnings

import numpy as np
import scipy.sparse
import torch

log = logging.getLogger(__name__)

_PIXEL_CHUNK = 4096  # pixels per construction chunk: bounds the temporary arrays (chunk × angles × 2)


def projection_angles(n_angles: int) -> np.ndarray:
    """Angles in radians: np.deg2rad(np.linspace(0, 180, n_angles, endpoint=False)), shape (n_angles,)."""
    return np.deg2rad(np.linspace(0.0, 180.0, n_angles, endpoint=False))


def circle_pixels(image_size: int) -> np.ndarray:
    """Flat (row-major) indices of the pixels with u² + v² ≤ (N // 2)², shape (P,), int64."""
    c = image_size // 2
    rows, cols = np.mgrid[:image_size, :image_size]
    return np.flatnonzero(((cols - c) ** 2 + (rows - c) ** 2 <= c * c).ravel())


def circle_mask(image_size: int) -> np.ndarray:
    """Boolean (N, N) image of the reconstruction circle (True inside)."""
    mask = np.zeros(image_size * image_size, dtype=bool)
    mask[circle_pixels(image_size)] = True
    return mask.reshape(image_size, image_size)


def _transpose_arrays(image_size: int, n_angles: int, dtype: np.dtype):
    """CSR arrays (crow, col, val) of T^T (rows = pixels, columns = view·N + detector), sorted."""
    n, c = image_size, image_size // 2
    theta = projection_angles(n_angles)
    cos, sin = np.cos(theta), np.sin(theta)
    pixels = circle_pixels(n)
    u_all = (pixels % n - c).astype(np.float64)
    v_all = (pixels // n - c).astype(np.float64)
    view_offset = (np.arange(n_angles, dtype=np.int64) * n)[None, :, None]
    counts = np.zeros(n * n, dtype=np.int64)
    cols, vals = [], []
    for start in range(0, pixels.size, _PIXEL_CHUNK):
        sl = slice(start, start + _PIXEL_CHUNK)
        d = u_all[sl, None] * cos[None] - v_all[sl, None] * sin[None] + c  # (P, A) detector position
        lower = np.floor(d)
        frac = d - lower
        det = lower[..., None] + np.array([0.0, 1.0])  # (P, A, 2): the two detectors hit
        weight = np.stack([1.0 - frac, frac], axis=-1)
        keep = (det >= 0) & (det <= n - 1) & (weight != 0)
        counts[pixels[sl]] = keep.reshape(keep.shape[0], -1).sum(axis=1)
        cols.append((view_offset + det.astype(np.int64))[keep].astype(np.int32))
        vals.append(weight[keep].astype(dtype))
    crow = np.concatenate([[0], np.cumsum(counts)])
    if crow[-1] >= np.iinfo(np.int32).max:
        raise ValueError(f"CT system matrix too large for int32 indices ({crow[-1]} non-zeros)")
    col, val = np.concatenate(cols), np.concatenate(vals)
    del cols, vals  # the chunks: halve the peak memory before the transpose is built
    return crow.astype(np.int32), col, val


def _to_torch_csr(matrix: scipy.sparse.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": a notice, not a problem
        warnings.simplefilter("ignore", UserWarning)
        out = torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int32, copy=False)),
            torch.from_numpy(matrix.indices.astype(np.int32, copy=False)),
            torch.from_numpy(matrix.data),
            size=matrix.shape,
            check_invariants=False,
        )
    return out.to(device)


@functools.lru_cache(maxsize=8)
def _cached(image_size: int, n_angles: int, dtype: torch.dtype, device: torch.device):
    np_dtype = np.float64 if dtype == torch.float64 else np.float32
    crow, col, val = _transpose_arrays(image_size, n_angles, np_dtype)
    shape_t = (image_size * image_size, n_angles * image_size)
    transpose = scipy.sparse.csr_matrix((val, col, crow), shape=shape_t)
    forward = transpose.T.tocsr()  # counting-sort transpose in scipy's C++: sorted column indices
    forward.sort_indices()
    log.debug("built CT system matrix N=%d views=%d nnz=%d %s on %s",
              image_size, n_angles, forward.nnz, dtype, device)
    return _to_torch_csr(forward, device), _to_torch_csr(transpose, device)


def system_matrices(image_size: int, n_angles: int, dtype: torch.dtype,
                    device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """(T, T^T) as torch sparse CSR, float32 or float64, cached per (N, n_angles, dtype, device).

    Shapes: T (n_angles·N, N²), T^T (N², n_angles·N).
    """
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"CT system matrices exist in float32 and float64, not {dtype}")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return _cached(int(image_size), int(n_angles), dtype, device)


def clear_cache() -> None:
    """Drop every cached system matrix (frees their memory)."""
    _cached.cache_clear()


class SparsePair(torch.autograd.Function):
    """y = M·x for a sparse CSR M with dense x (K, B); the backward pass is M^T·g using the stored M^T.

    The backward calls this same function with the matrices swapped, so higher derivatives work too.
    """

    @staticmethod
    def forward(ctx, dense: torch.Tensor, matrix: torch.Tensor, matrix_t: torch.Tensor):
        ctx.matrices = (matrix, matrix_t)
        return matrix @ dense

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        matrix, matrix_t = ctx.matrices
        return SparsePair.apply(grad, matrix_t, matrix), None, None
