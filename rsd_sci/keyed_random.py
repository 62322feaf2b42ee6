"""Random draws keyed by (seed, step, global sample index, stream), so 1 and N processes agree.

Every random tensor a training step needs (noise levels, noise images, further masks) is drawn per
sample from its own `torch.Generator`, seeded by a stable 63-bit hash of the key

    (seed, step, index, stream)

where `index` is the sample's GLOBAL index in the training split, `step` the optimiser step and `stream`
a small integer naming the purpose of the draw (one stream for σ, another for the noise image, ...). The
numbers a sample receives therefore do not depend on which other samples share its batch, on their
order, on the rank that holds it or on the world size: a run on 1 process and on N processes with the
same global batch draws the same numbers. Draws fixed per training sample (published: "masks fixed per
training image") use `step=PER_SAMPLE`.

The hash is BLAKE2b of the decimal key (Python's `hash()` is salted per process, so it cannot be used).
Numbers are generated on the CPU and then moved to the requested device, so CPU and CUDA runs draw the
same values. The price is one small generator per sample: negligible next to a network step.

Example:
    >>> import torch
    >>> keys = torch.tensor([3, 7])
    >>> a = keyed_randn(keys, (2,), seed=0, step=5, stream=1)
    >>> b = keyed_randn(torch.tensor([7, 3, 11]), (2,), seed=0, step=5, stream=1)
    >>> torch.equal(a[0], b[1]) and torch.equal(a[1], b[0])
    True
"""

from __future__ import annotations

import enum
import hashlib
import operator

import numpy as np
import torch

PER_SAMPLE = -1  # `step` value for draws fixed per training sample (the same at every step)


class Stream(enum.IntEnum):
    """Every keyed draw's `stream`: one table, so no two purposes share numbers (the values are kept
    from the files they came from: changing one changes every result that draws it)."""

    TEACHER_SIGMA = 0        # teacher step: ln σ's standard normal
    TEACHER_NOISE = 1        # teacher step: the diffusion noise n
    SAMPLER_START = 7        # teacher sampling: the starting noise
    DISTILL_Z = 10           # distillation: the generator's input noise z
    DISTILL_Y_NOISE = 11     # fake-score update: the synthetic measurement's noise
    DISTILL_SIGMA = 12       # fake-score update: ln σ's standard normal
    DISTILL_DIFFUSION = 13   # fake-score update: the diffusion noise
    DISTILL_T = 14           # generator update: t
    DISTILL_EPS = 15         # generator update: ε
    DISTILL_CRITIC_NOISE = 16   # generator update: the noise of the critic's synthetic measurement
    HELDOUT_MEASURE = 20     # the distillation's held-out synthetic measurements
    FRESH_FURTHER = 0x4644   # ("FD") the index of a fresh further operator (the sub-streams below)
    FURTHER_MASK = 0x4D48    # ("MH", M-hat) a training sample's further mask (SeedSequence key)
    ADPS_START = 0x4450      # ("DP") A-DPS's starting noise
    PRIOR_START = 0x4750     # ("GP") the generator prior's starting noise; the restart is the key's step


class FurtherDraw(enum.IntEnum):
    """Sub-streams of `Stream.FRESH_FURTHER`: which fresh further operator of a distillation iteration."""

    GENERATOR_INPUT = 0      # Â of the generator's input z_in
    TEACHER_VIEW = 1         # the view P = R̂·Â of the generator update
    FAKE_LOSS = 2            # Â of the fake score's Ambient loss
_PERSON = b"rsd-sci-keyed"  # BLAKE2b personalisation: separates our hashes from any other use


def key_seed(seed: int, *key: int) -> int:
    """A stable 63-bit seed for the key (seed, *key): BLAKE2b-64 of the decimal integers, top bit cleared.

    Stable across processes, machines and Python versions (unlike `hash()`).

    >>> key_seed(0, 1, 2) == key_seed(0, 1, 2) != key_seed(0, 2, 1)
    True
    """
    parts = []
    for part in (seed, *key):
        if isinstance(part, bool):
            raise TypeError(f"key parts must be integers, got {part!r}")
        try:
            parts.append(operator.index(part))  # ints, numpy integers, 0-d integer tensors
        except TypeError as err:
            raise TypeError(f"key parts must be integers, got {part!r} ({type(part).__name__})") from err
    text = ",".join(str(p) for p in parts).encode("ascii")
    digest = hashlib.blake2b(text, digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "little") >> 1


def keyed_generator(seed: int, *key: int) -> torch.Generator:
    """A CPU `torch.Generator` seeded by `key_seed(seed, *key)`.

    `keyed_randn` uses the key order (step, index, stream): `keyed_generator(seed, step, index, stream)`
    yields the numbers that sample `index` receives there.
    """
    gen = torch.Generator(device="cpu")
    gen.manual_seed(key_seed(seed, *key))
    return gen


def _key_list(keys: torch.Tensor) -> list[int]:
    """(B,) integer tensor -> list of Python ints (validated)."""
    if not isinstance(keys, torch.Tensor) or keys.ndim != 1:
        raise ValueError(f"keys must be a 1-D tensor of global sample indices, got {keys!r}")
    if keys.dtype.is_floating_point or keys.dtype.is_complex or keys.dtype == torch.bool:
        raise ValueError(f"keys must be an integer tensor, got dtype {keys.dtype}")
    return [int(k) for k in keys.tolist()]


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    """The real dtype the CPU draws are made in (float64 for double requests, float32 otherwise)."""
    return torch.float64 if dtype in (torch.float64, torch.complex128) else torch.float32


def _keyed_draw(kind: str, keys: torch.Tensor, shape: tuple[int, ...], seed: int, step: int,
                stream: int, device: torch.device | str | None, dtype: torch.dtype) -> torch.Tensor:
    """Shared body of keyed_randn / keyed_rand: one generator per key, stacked, moved, cast."""
    shape = tuple(int(s) for s in shape)
    complex_out = dtype.is_complex
    if complex_out and kind != "normal":
        raise ValueError(f"complex draws are only defined for normal noise, not {kind}")
    draw_shape = (*shape, 2) if complex_out else shape  # complex noise is two real draws
    real = _real_dtype(dtype)
    rows = []
    for index in _key_list(keys):
        gen = keyed_generator(seed, step, index, stream)
        if kind == "normal":
            rows.append(torch.randn(draw_shape, generator=gen, dtype=real))
        else:
            rows.append(torch.rand(draw_shape, generator=gen, dtype=real))
    out = torch.stack(rows) if rows else torch.empty((0, *draw_shape), dtype=real)
    if complex_out:
        out = torch.view_as_complex(out.contiguous())
    device = keys.device if device is None else device
    return out.to(device=device, dtype=dtype)


def keyed_randn(keys: torch.Tensor, shape: tuple[int, ...], seed: int, step: int, stream: int,
                device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal draws, one independent row per key.

    keys: (B,) int64 global sample indices. shape: the per-sample shape. Returns (B, *shape) on `device`
    (default: the keys' device) with `dtype`. A complex dtype gives real and imaginary parts that are each
    N(0, 1) (variance 1 per real component, the convention of σ_n). Row b depends only on
    (seed, step, keys[b], stream).
    """
    return _keyed_draw("normal", keys, shape, seed, step, stream, device, dtype)


def keyed_rand(keys: torch.Tensor, shape: tuple[int, ...], seed: int, step: int, stream: int,
               device: torch.device | str | None = None,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Uniform [0, 1) draws, one independent row per key: (B, *shape), as `keyed_randn` (real dtypes)."""
    return _keyed_draw("uniform", keys, shape, seed, step, stream, device, dtype)


def further_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator for one training sample's further mask, keyed by (seed, global index) only.

    The 63-bit seed comes from numpy's SeedSequence([seed mod 2⁶⁴, index, Stream.FURTHER_MASK]): stable
    across runs, platforms and process counts.
    """
    state = np.random.SeedSequence([int(seed) % 2**64, int(index), int(Stream.FURTHER_MASK)])
    return torch.Generator(device="cpu").manual_seed(int(state.generate_state(1, dtype=np.uint64)[0]) >> 1)


def further_generators(batch, seed: int, generator: torch.Generator | None = None) -> list[torch.Generator]:
    """One CPU generator per sample of a batch for its further mask: `further_generator(seed, index)`
    keyed by batch["index"], or the one `generator` given, repeated (its rows drawn in turn)."""
    if generator is not None:
        return [generator] * int(batch["y"].shape[0])
    return [further_generator(seed, int(k)) for k in batch["index"].tolist()]
