"""Which training stage runs its networks under bf16 autocast.

Autocast runs the UNet's convolutions and matrix products in bf16 while the physics stays in
float32/complex64 (`rsd_sci.physics.precision`). `--precision auto`: both stages on CUDA; on a CPU with
bf16 arithmetic (AVX512-BF16 or AMX in /proc/cpuinfo's flags; elsewhere torch emulates it, slower than
float32) the distillation, and the teacher for MRI only: CT teachers trained under bf16 drew further
from the clean images, MRI teachers did not, and no distillation minded it (docs/method.md, "bf16 on
the main job"; the image families' teachers were not measured under bf16, so they keep float32). The
evaluation (samplers, A-DPS, the generator prior) always runs in float32.

    >>> cpu = torch.device("cpu")
    >>> use_bf16("float32", torch.device("cuda"), "teacher", "ct"), use_bf16("bf16", cpu, "teacher", "ct")
    (False, True)
    >>> use_bf16("auto", cpu, "teacher", "ct")
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


def use_bf16(precision: str, device: torch.device, stage: str, modality: str) -> bool:
    """Whether `stage` ("teacher" | "distill") of a `modality` run on `device` autocasts to bf16 under
    `precision` ("bf16", "float32", or "auto": CUDA, and on CPUs with bf16 arithmetic the distillation
    and MRI's teacher)."""
    if precision != "auto":
        return precision == "bf16"
    cpu_stage = stage == "distill" or modality == "mri"
    return device.type == "cuda" or (device.type == "cpu" and cpu_stage and bool(cpu_bf16_flags()))
