"""The published fastMRI recipe's cost: one teacher step of its network measured on the CPU, the GPU run on paper.

    python benchmarks/recipe_cost.py                       # 384×384, batch 1 (~2 min on 2 cores, ~9 GB)
    python benchmarks/recipe_cost.py --loader 250          # and the verdict against a measured loader rate
    python benchmarks/recipe_cost.py --size 64 --quick     # a smoke run (seconds)

Measured, on the CPU in float32: one teacher training step of recipes/fastmri-brain-r4.yaml's network
(the `fastmri` preset, MONAI's UNet 128 channels × 4 levels × 4 blocks) as `train_teacher` runs it:
the batch's operator (`family.measure`: 4 coils, size×size, R = 4 line masks, birdcage maps), `batch_loss`
(keyed σ and noise, the Ambient further operator, the network on [Re, Im] + 2 conditioning channels, the
k-space loss) and backward, at batch 1 (`--batches 1,2`: also 2, and per sample from the two):
    FLOPs       torch.utils.flop_counter.FlopCounterMode over forward and backward (matrix products and
                convolutions; elementwise work, norms and FFTs are not counted)
    activations the bytes of the tensors autograd saves for backward (saved_tensors_hooks; each storage
                once, parameters excluded): the memory a step holds above its state, less transients
At `--check-size` batches 1 and 2 show both linear in the batch.
At `--check-size` (64): the same step under the CPU's bf16 autocast, whose activations / float32's scale
the 384² figure (CUDA's autocast keeps GroupNorm in float32, so the GPU's lie between the two; the
largest batch is given for both), and one distillation iteration of the three networks (`Distiller`: a
fake-score update and a generator update, counted separately), whose FLOPs and activations / the
teacher step's give the distillation's figures (the network is fully convolutional at these sizes, so
both scale with the pixels).

On paper, H100 SXM: bf16 dense peak `PEAK` = 989 TFLOPS at `--utilisation` (0.4) of it; 80 GB, less
`RESERVE` for the CUDA context, cuDNN workspaces and fragmentation, holds the state (float32 weights,
gradients, Adam moments and EMA: 20 bytes a parameter for the teacher; generator and fake score with
gradients and Adam, the generator's EMA, the frozen teacher: 40 bytes a parameter for the distillation)
and the bf16 activations of the largest batch. The rate the GPU consumes samples at, the loader rate it
needs (2× that: the goal), and the GPU-hours of the recipe's teacher (steps × batch) and distillation
(iterations × batch, and the published batch 24; every iteration reads two batches of operators).
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import environment  # noqa: E402  (sibling)

from rsd_sci.diffusion.networks import count_parameters  # noqa: E402
from rsd_sci.distill.distiller import Distiller, DistillSettings  # noqa: E402
from rsd_sci.distill.draws import KeyedDraws  # noqa: E402
from rsd_sci.engine.model import build_model  # noqa: E402
from rsd_sci.engine.teacher import batch_loss  # noqa: E402
from rsd_sci.physics.coil_maps import birdcage_maps  # noqa: E402
from rsd_sci.physics.masks import MaskSpec  # noqa: E402
from rsd_sci.presets import NETWORK_KEYS, PRESETS  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "fastmri-brain-r4.yaml"
COILS = 4                     # the recipe's virtual coils
PEAK = 989e12                 # H100 SXM bf16 dense FLOP/s
MEMORY = 80e9                 # H100 bytes
RESERVE = 4e9                 # CUDA context, cuDNN workspaces, allocator fragmentation
PUBLISHED_DISTILL_BATCH = 24


# ---- the recipe's network and a batch as the teacher sees it ----------------------------------------
def recipe() -> dict:
    return yaml.safe_load(RECIPE.read_text())


def build(size: int):
    """The recipe's teacher (a `Model`) for 4-coil size×size data, float32 on the CPU."""
    spec = dict(family="mri", shape=[size, size], coils=COILS,
                mask=MaskSpec(kind="random", acceleration=4.0, center_fraction=0.0625).to_dict())
    torch.manual_seed(0)
    return build_model(spec, {k: PRESETS[recipe()["preset"]][k] for k in NETWORK_KEYS}, 0.0)


def measurement(teacher, batch: int, size: int):
    """`family.measure` of a batch (y (B, 4, size, size) random k-space under R = 4 line masks, birdcage maps)."""
    mask_spec = MaskSpec(kind="random", acceleration=4.0, center_fraction=max(0.0625, 6 / size))
    lines = [mask_spec.make((size, size), seed=i) for i in range(batch)]
    masks = torch.from_numpy(np.stack([m.mask for m in lines]))
    y = torch.randn(batch, COILS, size, size, dtype=torch.complex64) * masks[:, None, None, :]
    maps = torch.from_numpy(birdcage_maps(COILS, size, size)).expand(batch, -1, -1, -1).contiguous()
    return teacher.family.measure(dict(y=y, masks=masks, centers=torch.from_numpy(np.stack([m.center for m in lines])),
                                       coil_maps=maps, sigma_n=torch.zeros(batch), index=torch.arange(batch)))


# ---- counting ----------------------------------------------------------------------------------------
def count(fn, params) -> tuple[float, int, float]:
    """(FLOPs, saved-activation bytes, seconds) of fn(): storages saved for backward, each once, parameters
    excluded."""
    skip = {p.untyped_storage().data_ptr() for p in params}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    start = time.perf_counter()
    with FlopCounterMode(display=False) as flops, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return flops.get_total_flops(), sum(saved.values()), time.perf_counter() - start


def teacher_step(teacher, size: int, batch: int, bf16: bool = False) -> tuple[float, int, float]:
    """One step's loss and backward (the optimiser's elementwise update is not counted)."""
    D = teacher.denoiser
    m = measurement(teacher, batch, size)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = batch_loss(D, teacher, m, seed=0, step=0)
        loss.backward()

    D.zero_grad(set_to_none=True)
    return count(step, list(D.parameters()))


def distill_iteration(teacher, size: int, batch: int) -> dict[str, tuple[float, int, float]]:
    """The fake-score update and the generator update of one `Distiller` iteration, counted apart."""
    fake = copy.deepcopy(teacher.denoiser).requires_grad_(True)
    G = copy.deepcopy(teacher.denoiser).requires_grad_(True)
    distiller = Distiller(teacher, fake, G, torch.optim.Adam(fake.parameters()), torch.optim.Adam(G.parameters()),
                          DistillSettings(loss_space="full"))
    params = [p for net in (teacher.denoiser, fake, G) for p in net.parameters()]
    m, draws = measurement(teacher, batch, size), KeyedDraws(torch.arange(batch), 0, 0)
    out = {"fake update": count(lambda: distiller.fake_step(m, draws), params),
           "generator update": count(lambda: distiller.generator_step(m, draws), params)}
    teacher.denoiser.requires_grad_(True)
    return out


def per_sample(one: tuple, two: tuple) -> tuple[float, int]:
    """(FLOPs, activation bytes) per sample from batches 1 and 2."""
    return two[0] / 2, two[1] - one[1]


# ---- the table ---------------------------------------------------------------------------------------
def gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--batches", default="1", help="batches measured at --size: 1 (per sample = batch 1, "
                        "an upper bound), or 1,2 (per sample = the difference; ~2x the memory)")
    parser.add_argument("--check-size", type=int, default=64)
    parser.add_argument("--utilisation", type=float, default=0.4)
    parser.add_argument("--loader", type=float, default=None,
                        help="a measured loader rate, samples/s (benchmarks/loader.py), for the verdict")
    parser.add_argument("--loader-note", default="", help="where the --loader rate comes from")
    parser.add_argument("--quick", action="store_true", help="--check-size 32")
    args = parser.parse_args()
    if args.quick:
        args.check_size = 32
    for line in environment(torch.device("cpu")):
        print(line)
    r = recipe()
    teacher = build(args.size)
    params = count_parameters(teacher.denoiser)
    print(f"recipe {RECIPE.name}: preset {r['preset']}, {params / 1e6:.2f} M parameters; teacher {r['steps']:,} "
          f"steps × batch {r['batch']}, distillation {r['distill_steps']:,} iterations; {COILS} coils")

    runs = {int(b): teacher_step(teacher, args.size, int(b)) for b in args.batches.split(",")}
    flops, act32 = per_sample(runs[1], runs[2]) if 2 in runs else runs[1][:2]
    small = build(args.check_size)
    check = {b: teacher_step(small, args.check_size, b) for b in (1, 2)}
    check16 = {b: teacher_step(small, args.check_size, b, bf16=True) for b in (1, 2)}
    small_flops, small32 = per_sample(check[1], check[2])
    bf16_ratio = per_sample(check16[1], check16[2])[1] / small32
    distill = {b: distill_iteration(small, args.check_size, b) for b in (1, 2)}
    parts = {k: per_sample(distill[1][k], distill[2][k]) for k in distill[1]}
    d_flops_ratio = sum(f for f, _ in parts.values()) / small_flops
    d_act_ratio = max(a for _, a in parts.values()) / small32

    print(f"\nmeasured on the CPU, float32 ({args.size}×{args.size}, {COILS} coils, 2 + 2 network channels):")
    for b, (f, a, s) in runs.items():
        print(f"  teacher step, batch {b}: {f / 1e12:.3f} TFLOP, saved activations {gb(a)}, {s:.1f} s")
    print(f"  per sample: {flops / 1e12:.3f} TFLOP forward + backward, activations {gb(act32)} float32"
          + ("" if 2 in runs else " (batch 1's)"))
    print(f"at {args.check_size}×{args.check_size}, batch 2 / batch 1: FLOPs {check[2][0] / check[1][0]:.3f}×, "
          f"activations {check[2][1] / check[1][1]:.3f}× (linear in the batch)")
    print(f"at {args.check_size}×{args.check_size}: bf16 autocast / float32 activations {bf16_ratio:.3f}; "
          f"distillation iteration / teacher step: FLOPs {d_flops_ratio:.2f}× ("
          + ", ".join(f"{k} {f / small_flops:.2f}×" for k, (f, _) in parts.items())
          + f"; a teacher step is 3 forward passes, so an iteration is {3 * d_flops_ratio:.1f}), "
          f"activations (the larger update) {d_act_ratio:.2f}×")

    rate = args.utilisation * PEAK
    act16 = act32 * bf16_ratio
    t_state, d_state = 20 * params, 40 * params
    largest = lambda state, act: math.floor((MEMORY - RESERVE - state) / act)  # noqa: E731
    t_rate = rate / flops
    d_flops = flops * d_flops_ratio
    d_rate = rate / d_flops                    # distillation samples per second (one per batch row)
    need = 2 * max(t_rate, 2 * d_rate)         # the goal: 2× what the GPU consumes; distillation reads 2 batches
    hours = lambda samples, per: samples * per / rate / 3600  # noqa: E731
    print(f"\non paper, one H100 SXM (bf16 dense peak {PEAK / 1e12:.0f} TFLOPS, {args.utilisation:.0%} of it, "
          f"{MEMORY / 1e9:.0f} GB less {RESERVE / 1e9:.0f} GB reserve):")
    print(f"  activations per sample, bf16 as on the CPU (float32): teacher {gb(act16)} ({gb(act32)}), "
          f"distillation {gb(act16 * d_act_ratio)} ({gb(act32 * d_act_ratio)})")
    print(f"  largest batch, bf16 as on the CPU (float32 activations, the bound if CUDA's autocast keeps more in "
          f"float32): teacher {largest(t_state, act16)} ({largest(t_state, act32)}), state {gb(t_state)}; "
          f"distillation {largest(d_state, act16 * d_act_ratio)} ({largest(d_state, act32 * d_act_ratio)}), "
          f"state {gb(d_state)}")
    print(f"  teacher: {t_rate:.1f} samples/s consumed; distillation: {d_rate:.1f} samples/s "
          f"({2 * d_rate:.1f} read: two batches an iteration)")
    print(f"  loader needed (2× the larger): {need:.0f} samples/s")
    t_hours = hours(r["steps"] * r["batch"], flops)
    d_hours = hours(r["distill_steps"] * r["batch"], d_flops)
    d24 = hours(r["distill_steps"] * PUBLISHED_DISTILL_BATCH, d_flops)
    print(f"  GPU-hours: teacher {t_hours:.1f} ({r['steps']:,} × {r['batch']}), distillation {d_hours:.1f} "
          f"({r['distill_steps']:,} × {r['batch']}; {d24:.1f} at the published batch {PUBLISHED_DISTILL_BATCH})")
    if args.loader is not None:
        verdict = "keeps up" if args.loader >= need else "does NOT keep up"
        print(f"  loader {args.loader:.0f} samples/s {args.loader_note}: {args.loader / need:.2f}× the need: "
              f"the loader {verdict}")


if __name__ == "__main__":
    main()
