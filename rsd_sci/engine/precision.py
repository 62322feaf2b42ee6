"""Where the networks train under bf16 autocast: `--precision auto` is CUDA and CPUs with bf16 instructions.

Autocast runs the UNet's convolutions and matrix products in bf16 while the physics stays in
float32/complex64 (`rsd_sci.physics.precision`). On a CPU it only pays where the hardware has bf16
arithmetic (AVX512-BF16 or AMX, named in /proc/cpuinfo's flags); elsewhere torch emulates it, slower than
float32. The evaluation (samplers, A-DPS, the generator prior) always runs in float32.

    >>> use_bf16("float32", torch.device("cuda")), use_bf16("bf16", torch.device("cpu"))
    (False, True)
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "float32")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_bf16_flags() -> tuple[str, ...]:
    """The CPU's bf16 instruction sets from /proc/cpuinfo (empty where absent or unreadable)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return ()
    return tuple(f for f in BF16_FLAGS if f in flags)


def use_bf16(precision: str, device: torch.device) -> bool:
    """Whether training on `device` autocasts to bf16: "bf16", "float32", or "auto" (CUDA, bf16 CPUs)."""
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and bool(cpu_bf16_flags()))
