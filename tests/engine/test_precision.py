"""`--precision auto`: which stage autocasts to bf16, by device, CPU flags and modality."""

import torch

from rsd_sci.engine import precision
from rsd_sci.engine.precision import use_bf16

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_on_a_bf16_cpu_autocasts_the_distillation_and_only_the_mri_teacher(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ("avx512_bf16",))
    assert [use_bf16("auto", CPU, "teacher", m) for m in ("mri", "ct", "image")] == [True, False, False]
    assert all(use_bf16("auto", CPU, "distill", m) for m in ("mri", "ct", "image"))


def test_auto_without_bf16_arithmetic_stays_float32_and_cuda_autocasts_both(monkeypatch):
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: ())
    assert not any(use_bf16("auto", CPU, s, "mri") for s in ("teacher", "distill"))
    assert all(use_bf16("auto", CUDA, s, m) for s in ("teacher", "distill") for m in ("mri", "ct"))
    assert use_bf16("bf16", CPU, "teacher", "ct") and not use_bf16("float32", CUDA, "distill", "mri")
