"""What makes the CPU preset's UNet step cheaper: forward + backward of variants, printed as one table.

    python benchmarks/network_variants.py             # batch 8, 2 + 2 channels, 8 rounds (~2 min on 2 cores)
    python benchmarks/network_variants.py --quick     # 2 rounds, without torch.compile: a smoke run

Contenders, each F(x_in, c_noise) of `rsd_sci.diffusion.networks.UNetBackbone` followed by
`out.square().mean().backward()` on a fixed random batch (B 8, 4 input channels, size × size):

    (32, 64, 64) 64²           the `quality` network (the first `tiny`): the reference
    ... channels_last          the same weights and input in channels_last memory format
    ... torch.compile          the same wrapped in `torch.compile` (inductor; its compile time is printed)
    (32, 64, 64) 48²           the same network on 48 × 48 images
    (16, 32, 64) 64²           half the first widths (GroupNorm 8): today's `tiny`
    ... bf16 autocast          the same under `torch.autocast("cpu", torch.bfloat16)` (fast only on CPUs
                               with AVX512-BF16 or AMX: the script prints which the CPU has)

Timing as every benchmark here: `timing.interleave` (a warm-up call each, then rotating rounds).
Run it alone: torch's threads spin-wait when another process holds a core.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from timing import Load, Row, bf16_support, interleave, print_table, ratio, timed  # noqa: E402  (sibling)

from rsd_sci.diffusion.networks import build_backbone, count_parameters  # noqa: E402


def contender(size: int, features=(32, 64, 64), groups: int = 16, channels_last: bool = False,
              compiled: bool = False, bf16: bool = False):
    """(step, parameters): one forward + backward of a fresh UNet on a fixed batch."""
    torch.manual_seed(0)
    net = build_backbone(dict(features=features, num_res_blocks=1, attention_levels=(False, False, True),
                              num_head_channels=32, norm_num_groups=groups), channels=2, cond_channels=2)
    x, c = torch.randn(8, 4, size, size), torch.randn(8)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    f = torch.compile(net) if compiled else net

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = f(x, c)
        out.float().square().mean().backward()
    return step, count_parameters(net)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, no torch.compile")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    cases = {"(32, 64, 64) 64²": contender(64),
             "... channels_last": contender(64, channels_last=True)}
    if not args.quick:
        t0 = time.perf_counter()
        cases["... torch.compile"] = contender(64, compiled=True)
        cases["... torch.compile"][0]()
        print(f"torch.compile: first call {time.perf_counter() - t0:.0f} s")
    cases["(32, 64, 64) 48²"] = contender(48)
    cases["(16, 32, 64) 64²"] = contender(64, features=(16, 32, 64), groups=8)
    cases["... bf16 autocast"] = contender(64, features=(16, 32, 64), groups=8, bf16=True)
    with Load() as load:
        times = interleave({k: step for k, (step, _) in cases.items()}, rounds)
    reference = times["(32, 64, 64) 64²"]
    print_table(Row("forward + backward", "variant", "parameters", "rounds", "best", "median", "",
                    "speed-up, median (best)"),
                [timed("batch 8, 2 + 2 ch", k, f"{n / 1e6:.2f} M", times[k], ratio=ratio(reference, times[k]))
                 for k, (_, n) in cases.items()])
    print(f"{torch.get_num_threads()} threads; other processes used {load.others()} of the CPUs; "
          f"CPU bf16: {bf16_support()}")



if __name__ == "__main__":
    main()
