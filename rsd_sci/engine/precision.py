"""Which training stage runs its networks under bf16 autocast.

Autocast runs the UNet's convolutions and matrix products in bf16 while the physics stays in
float32/complex64 (`rsd_sci.physics.precision`). `--precision auto`: both stages on CUDA; on a CPU with
bf16 arithmetic (AVX512-BF16 or AMX in /proc/cpuinfo's flags; elsewhere torch emulates it, slower than
float32) the distillation only, as the CPU teachers trained under bf16 drew CT further from the clean
images while the distillation under bf16 did not (docs/method.md, "bf16 on the main job"). The
evaluation (samplers, A-DPS, the generator prior) always runs in float32.

    >>> cpu = torch.device("cpu")
    >>> use_bf16("float32", torch.device("cuda"), "teacher"), use_bf16("bf16", cpu, "teacher")
    (False, True)
    >>> use_bf16("auto", cpu, "teacher")
    False
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


def use_bf16(precision: str, device: torch.device, stage: str) -> bool:
    """Whether `stage` ("teacher" | "distill") on `device` autocasts to bf16 under `precision` ("bf16",
    "float32", or "auto": CUDA, and the distillation on CPUs with bf16 arithmetic)."""
    if precision != "auto":
        return precision == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and stage == "distill" and bool(cpu_bf16_flags()))
