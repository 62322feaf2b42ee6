"""The embedded default data: seeded procedural MRI, CT and image phantoms of any size (no data files).

Each phantom is drawn by its own generator `np.random.default_rng((seed, i))`, so sample i depends only
on (seed, i) and never on how many are requested: `mri_phantoms(10, 64, 0)[3]` equals
`mri_phantoms(4, 64, 0)[3]`, and train/test sets built from disjoint index ranges stay stable.

Geometry: the field of view is the square [−1, 1]² (x along columns, y along rows, pixel centres at
−1 + (j + ½)·2/size). A phantom is a stack of rotated ellipses painted back to front,
    image ← image·(1 − m) + value·m,
with a soft mask m (a smoothstep over ~1.5 pixels of the first-order signed distance
d = f/|∇f|, f = (u/a)² + (v/b)² − 1): edges are anti-aliased so the k-space is not dominated by the
aliasing of hard pixel edges.

- MRI (`mri_phantoms`): brain-like complex images with T1-like contrast: a thick scalp, a dark skull,
  grey matter, two white matter lobes, two ventricles, up to two small lesions; a mild smooth phase
  (Legendre polynomials of low degree, |φ| ≤ π/4); magnitude normalised to max 1. Few random parts,
  each at least two pixels wide at 64²: the main job's teacher sees 16,000 images, and a richer family
  (T1/T2 contrast, sulci, deep nuclei, thin CSF rim, a bias field) was beyond that budget even on
  clean data (docs/method.md, "Issue 24", the clean control).
- CT (`ct_phantoms`): attenuation μ in 1/mm (via `hounsfield.hu_to_mu`, soft tissue ≈ water); "body":
  fat layer (−100 HU), muscle, lungs (−800 HU), mediastinum, spine and ribs (bone ≈ +1000 HU), aorta,
  nodules; "head": scalp, skull (bone), brain, ventricles, lesions. Zero outside the body, and all of
  it inside the inscribed circle (CT geometry with circle=True).
- images (`image_phantoms`): |MRI phantom| as real (n, 1, size, size) images in [0, 1].

>>> mri_phantoms(2, 32, seed=0).shape, ct_phantoms(2, 32, seed=0).dtype
((2, 32, 32), dtype('float32'))
"""

from __future__ import annotations

import numpy as np
from numpy.polynomial import legendre

from rsd_sci.data.hounsfield import hu_to_mu

_EDGE_PIXELS = 1.5  # width of the soft edge of every ellipse, in pixels


def _grid(size: int) -> np.ndarray:
    """Pixel-centre coordinates in (−1, 1), shape (size,)."""
    return (np.arange(size) + 0.5) * (2.0 / size) - 1.0


def _paint(img: np.ndarray, xs: np.ndarray, ys: np.ndarray, ellipse: tuple, value: float) -> None:
    """Composite one soft ellipse (cx, cy, a, b, theta) with `value` onto img (H, W), in place.

    Only the ellipse's bounding box (plus the soft edge) is computed, so small ellipses are cheap.
    """
    cx, cy, a, b, theta = ellipse
    pixel = xs[1] - xs[0] if xs.size > 1 else 2.0
    edge = _EDGE_PIXELS * pixel
    reach = max(a, b) + edge
    j0, j1 = np.searchsorted(xs, [cx - reach, cx + reach])
    i0, i1 = np.searchsorted(ys, [cy - reach, cy + reach])
    if j0 >= j1 or i0 >= i1:
        return
    dx = xs[None, j0:j1] - cx
    dy = ys[i0:i1, None] - cy
    c, s = np.cos(theta), np.sin(theta)
    u = dx * c + dy * s
    v = dy * c - dx * s
    f = (u / a) ** 2 + (v / b) ** 2 - 1.0
    grad = 2.0 * np.sqrt((u / a**2) ** 2 + (v / b**2) ** 2) + 1e-12
    t = np.clip(0.5 - (f / grad) / edge, 0.0, 1.0)
    m = t * t * (3.0 - 2.0 * t)
    box = img[i0:i1, j0:j1]
    box += m * (value - box)


def _smooth_field(shape: tuple[int, int], rng: np.random.Generator, order: int) -> np.ndarray:
    """P(x, y) = Σ_{j+k ≤ order} c_jk L_j(y) L_k(x), c_jk ~ N(0, 1)/(1 + j + k), scaled to max|P| = 1.

    L_j are Legendre polynomials on [−1, 1]; float64 (H, W).
    """
    h, w = shape
    ly = legendre.legvander(_grid(h), order)  # (H, order+1)
    lx = legendre.legvander(_grid(w), order)  # (W, order+1)
    j, k = np.meshgrid(np.arange(order + 1), np.arange(order + 1), indexing="ij")
    coef = rng.standard_normal((order + 1, order + 1)) / (1.0 + j + k)
    coef[j + k > order] = 0.0
    field = ly @ coef @ lx.T
    return field / max(float(np.abs(field).max()), 1e-12)


# Amplitude cap of the smooth phase of MRI phantoms (and of magnitude-only sources given one). π/4: a
# mild, smooth phase that still breaks the k-space's Hermitian symmetry. With a cap of π (phase spans up
# to 2π) the tiny teacher (600 steps) drew blobs instead of heads: patch SW to clean 0.043 against the
# data's 0.041, against 0.035 with π/4 and 0.031 without phase (docs/method.md, "MRI phantom phase").
PHASE_MAX_RAD = np.pi / 4


def smooth_phase(
    shape: tuple[int, int], rng: np.random.Generator, order: int = 3, max_rad: float = PHASE_MAX_RAD
) -> np.ndarray:
    """A smooth random phase map φ (H, W) float32: a Legendre polynomial of degree ≤ `order` in x and
    y (see `_smooth_field`) with amplitude max|φ| drawn uniformly in [max_rad/2, max_rad].

    Multiplying a magnitude image by exp(iφ) makes its k-space not Hermitian-symmetric, like real MRI
    data (a real image has K(−k) = conj K(k)).
    """
    amplitude = rng.uniform(0.5, 1.0) * max_rad
    return (amplitude * _smooth_field(tuple(shape), rng, order)).astype(np.float32)


def _place(center: tuple, angle: float, offset: tuple, axes: tuple, tilt: float) -> tuple:
    """An ellipse at `offset` from `center` in a frame rotated by `angle`: (cx, cy, a, b, theta)."""
    c, s = np.cos(angle), np.sin(angle)
    ox, oy = offset
    return (center[0] + c * ox - s * oy, center[1] + s * ox + c * oy, axes[0], axes[1], angle + tilt)


def _brain(size: int, rng: np.random.Generator) -> np.ndarray:
    """One brain-like complex64 phantom (size, size) drawn from rng (see the module docstring)."""
    xs = _grid(size)
    img = np.zeros((size, size))
    s = rng.uniform(0.80, 0.92)  # half-height of the head
    aspect = rng.uniform(0.72, 0.85)  # width / height
    centre = tuple(rng.normal(0.0, 0.03, 2))
    angle = rng.normal(0.0, 0.12)
    wm, gm, csf = rng.uniform(0.85, 0.95), rng.uniform(0.5, 0.6), rng.uniform(0.1, 0.15)   # T1-like
    scalp, bone = rng.uniform(0.7, 0.8), rng.uniform(0.03, 0.06)

    def ell(offset, axes, tilt=0.0):
        return _place(centre, angle, (offset[0] * s, offset[1] * s), (axes[0] * s, axes[1] * s), tilt)

    k_skull = rng.uniform(0.88, 0.9)          # a thick scalp and skull (~3 and ~2 pixels at 64²), no CSF rim
    k_gm = k_skull - rng.uniform(0.07, 0.09)
    for k, value in ((1.0, scalp), (k_skull, bone), (k_gm, gm)):
        _paint(img, xs, xs, ell((0, 0), (aspect * k, k)), value)
    for side in (-1, 1):  # white-matter lobes
        axes = (aspect * rng.uniform(0.3, 0.36), rng.uniform(0.55, 0.66))
        offset = (side * aspect * rng.uniform(0.27, 0.33), rng.normal(0.0, 0.03))
        _paint(img, xs, xs, ell(offset, axes, side * rng.uniform(0.0, 0.15)), wm)
    for side in (-1, 1):  # lateral ventricles
        offset = (side * rng.uniform(0.05, 0.09), rng.uniform(-0.12, 0.0))
        axes = (rng.uniform(0.03, 0.05), rng.uniform(0.14, 0.22))
        _paint(img, xs, xs, ell(offset, axes, side * rng.uniform(0.1, 0.35)), csf)
    for _ in range(rng.integers(0, 3)):  # lesions inside the white matter
        phi, r = rng.uniform(0.0, 2.0 * np.pi), 0.5 * np.sqrt(rng.random())
        offset = (aspect * r * np.cos(phi), r * np.sin(phi))
        axes = tuple(rng.uniform(0.02, 0.06, 2))
        _paint(img, xs, xs, ell(offset, axes, rng.uniform(0, np.pi)), rng.uniform(0.2, 1.0))
    img /= max(float(img.max()), 1e-12)
    phase = smooth_phase((size, size), rng, order=2)
    return (img * np.exp(1j * phase)).astype(np.complex64)


def mri_phantoms(n: int, size: int, seed: int) -> np.ndarray:
    """n brain-like complex MRI phantoms, complex64 (n, size, size), magnitude in [0, 1].

    Phantom i is drawn from np.random.default_rng((seed, i)) alone.
    """
    _check(n, size, seed)
    out = np.empty((n, size, size), np.complex64)
    for i in range(n):
        out[i] = _brain(size, np.random.default_rng((seed, i)))
    return out


def image_phantoms(n: int, size: int, seed: int) -> np.ndarray:
    """Real images for `--modality image`: |mri_phantoms(n, size, seed)|, float32 (n, 1, size, size)
    in [0, 1]."""
    return np.abs(mri_phantoms(n, size, seed))[:, None].astype(np.float32)


def _body_hu(size: int, rng: np.random.Generator) -> np.ndarray:
    """One thorax-like slice in HU (size, size), background −1000 (air)."""
    xs = _grid(size)
    img = np.full((size, size), -1000.0)
    centre = tuple(rng.normal(0.0, 0.02, 2))
    angle = rng.normal(0.0, 0.05)
    a = rng.uniform(0.74, 0.88) - float(np.hypot(*centre))  # half-width; the body stays within r ≤ 0.9
    b = a * rng.uniform(0.6, 0.78)  # half-height (anterior-posterior)

    def ell(offset, axes, tilt=0.0):
        return _place(centre, angle, (offset[0] * a, offset[1] * b), (axes[0] * a, axes[1] * b), tilt)

    _paint(img, xs, xs, ell((0, 0), (1.0, 1.0)), rng.uniform(-120, -80))  # subcutaneous fat
    k = rng.uniform(0.86, 0.93)
    _paint(img, xs, xs, ell((0, 0), (k, k)), rng.uniform(30, 60))  # muscle and organs
    lung = rng.uniform(-850, -750)
    for side in (-1, 1):
        axes = (rng.uniform(0.28, 0.34), rng.uniform(0.55, 0.68))
        _paint(img, xs, xs, ell((side * rng.uniform(0.4, 0.48), -0.05), axes, side * 0.1), lung)
    _paint(img, xs, xs, ell((rng.uniform(0.0, 0.1), 0.05), (0.2, rng.uniform(0.28, 0.36))),
           rng.uniform(30, 50))  # heart / mediastinum
    _paint(img, xs, xs, ell((0.0, 0.62), (0.09, 0.14)), rng.uniform(700, 1100))  # vertebral body
    _paint(img, xs, xs, ell((0.0, 0.62), (0.05, 0.08)), rng.uniform(200, 400))  # marrow
    _paint(img, xs, xs, ell((rng.uniform(0.08, 0.14), 0.4), (0.05, 0.08)),
           rng.uniform(40, 200))  # aorta
    for phi in np.linspace(0.0, 2.0 * np.pi, 10, endpoint=False) + rng.uniform(0.0, 0.6):  # ribs
        off, r = (k * 0.97 * np.cos(phi), k * 0.97 * np.sin(phi)), rng.uniform(0.025, 0.04)
        _paint(img, xs, xs, ell(off, (r, r * a / b)), rng.uniform(700, 1000))
    for _ in range(rng.integers(0, 3)):  # lung nodules
        side, r = rng.choice([-1, 1]), rng.uniform(0.02, 0.05)
        off = (side * rng.uniform(0.35, 0.52), rng.uniform(-0.4, 0.3))
        _paint(img, xs, xs, ell(off, (r, r * a / b)), rng.uniform(20, 60))
    return img


def _head_hu(size: int, rng: np.random.Generator) -> np.ndarray:
    """One head CT slice in HU (size, size), background −1000 (air)."""
    xs = _grid(size)
    img = np.full((size, size), -1000.0)
    centre = tuple(rng.normal(0.0, 0.02, 2))
    angle = rng.normal(0.0, 0.1)
    s = rng.uniform(0.78, 0.88) - float(np.hypot(*centre))
    aspect = rng.uniform(0.75, 0.85)

    def ell(offset, axes, tilt=0.0):
        return _place(centre, angle, (offset[0] * s, offset[1] * s), (axes[0] * s, axes[1] * s), tilt)

    k_skull, k_brain = rng.uniform(0.95, 0.97), rng.uniform(0.86, 0.9)
    _paint(img, xs, xs, ell((0, 0), (aspect, 1.0)), rng.uniform(10, 40))  # scalp
    _paint(img, xs, xs, ell((0, 0), (aspect * k_skull, k_skull)), rng.uniform(900, 1500))  # skull
    _paint(img, xs, xs, ell((0, 0), (aspect * k_brain, k_brain)), rng.uniform(32, 42))  # grey
    for side in (-1, 1):
        off = (side * aspect * rng.uniform(0.27, 0.33), rng.normal(0.0, 0.03))
        axes = (aspect * rng.uniform(0.3, 0.36), rng.uniform(0.55, 0.66))
        _paint(img, xs, xs, ell(off, axes, side * rng.uniform(0.0, 0.15)), rng.uniform(22, 30))
    for side in (-1, 1):  # ventricles (CSF)
        off = (side * rng.uniform(0.05, 0.09), rng.uniform(-0.12, 0.0))
        axes = (rng.uniform(0.03, 0.05), rng.uniform(0.14, 0.22))
        _paint(img, xs, xs, ell(off, axes, side * rng.uniform(0.1, 0.35)), rng.uniform(0, 10))
    for _ in range(rng.integers(0, 3)):  # haemorrhages / lesions
        phi, r = rng.uniform(0.0, 2.0 * np.pi), 0.55 * np.sqrt(rng.random())
        off = (aspect * r * np.cos(phi), r * np.sin(phi))
        _paint(img, xs, xs, ell(off, tuple(rng.uniform(0.02, 0.06, 2)), rng.uniform(0, np.pi)),
               rng.uniform(55, 85))
    return img


def ct_phantoms(n: int, size: int, seed: int, kind: str = "body") -> np.ndarray:
    """n CT phantoms as attenuation μ in 1/mm, float32 (n, size, size).

    kind "body" (thorax-like) or "head". Phantom i is drawn from np.random.default_rng((seed, i))
    alone. Zero (air) outside the body; every nonzero pixel lies inside the inscribed circle (radius
    0.9 of the half field of view at most, and anything beyond 0.95 is zeroed).
    """
    _check(n, size, seed)
    draw = {"body": _body_hu, "head": _head_hu}.get(kind)
    if draw is None:
        raise ValueError(f"kind must be 'body' or 'head', got {kind!r}")
    xs = _grid(size)
    inside = (xs[:, None] ** 2 + xs[None, :] ** 2) <= 0.95**2
    out = np.empty((n, size, size), np.float32)
    for i in range(n):
        out[i] = hu_to_mu(draw(size, np.random.default_rng((seed, i)))) * inside
    return out


def _check(n: int, size: int, seed: int) -> None:
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    if int(n) != n or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n}")
    if int(size) != size or size < 8:
        raise ValueError(f"size must be an integer >= 8, got {size}")
