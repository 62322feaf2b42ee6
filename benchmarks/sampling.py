"""Sampling speed: the one-step generator against the teacher's Heun sampler, printed as one table.

    python benchmarks/sampling.py                     # tiny on the CPU, batch 8, 64×64, 5 rounds (~65 s)
    python benchmarks/sampling.py --quick             # tiny, 32×32, 2 rounds: a smoke run (~13 s)
    python benchmarks/sampling.py --device cuda       # base preset, bf16 autocast, batch 64 (GPU)

What is timed, per batch of `--batch` samples, on the SAME backbone preset, batch, device and operators
(the first `--batch` entries of a phantom measurement set made in a temporary folder with train_step.py's
`make_sets`; only their masks, views and σ_n are used):

    one-step   what sampling with a generator runs: `family.measure(ops)` (the operator),
               `KeyedDraws(m.index, seed, step=0)` (draws keyed per sample) and
               `rsd_sci.distill.distiller.generate`: z of the clean image's shape, for Ambient teachers a
               fresh further operator Â and the input R̂·Â(σ_init z) with Â's conditioning, then ONE call
               of the generator G (a copy of the teacher's denoiser, as distillation starts it).
    Heun       `sample_teacher(teacher, m, steps=18, sampler="auto", truncate=False)`: the operator,
               for Ambient teachers one further operator per sample and the projection R̂·Â of the iterate
               before EVERY denoiser call (the Ambient sampler), keyed starting noise, 18 Heun steps =
               35 denoiser calls. truncate=False, so the Tweedie (image-noise) teacher also runs all 18.
    network    G alone on the input of its first one-step call (captured): the unit both are made of.

Cases (train_step.py's `CASES`): mri-1coil (single-coil, R = 4 line mask, 2 + 2 channels), ct-60/180
(60 of 180 views, 1 + 1 channels), and with `--cases` also tweedie (image noise σ_n 0.2: plain Heun,
no projection, 1 + 0 channels). Untrained networks: their cost does not depend on the weights.

Ratio = Heun time / one-step time (= one-step images/s / Heun images/s); goal ≥ 30×, limit 35×. Its
ceiling is 35 (35 network calls against 1), approached when the network dominates: for Ambient teachers
the one-step generator also builds its input (a further operator draw and R̂·Â of the noise), while the
Heun sampler's Ambient denoiser projects R̂·Â at every one of its 35 calls, so the ratio is
(35·(t_net + t_proj) + Heun's update arithmetic + set-up) / (t_net + t_proj + further draw + set-up):
slightly above 35 when the update arithmetic outweighs 35 further draws. The last two columns split
this: one-step / one network call (the generator's overhead) and Heun / 35 network calls.

Timing: every call under torch.no_grad() (and bf16 autocast on CUDA). All contenders of all cases run
in one `interleave`: one untimed warm-up call each, then `--rounds` rounds in which each runs once, in
an order rotating from round to round. A forward hook counts the network calls of every contender call
(checked: 1, 35, 1). Best and median over the rounds; rates from the median.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Load, best, interleave, make_sync, median, print_table, ratio  # noqa: E402  (sibling)
from train_step import CASES, make_sets, train_environment  # noqa: E402  (sibling)

from rsd_sci.data.batches import load_batch  # noqa: E402
from rsd_sci.diffusion.model import build_model  # noqa: E402
from rsd_sci.diffusion.networks import count_parameters  # noqa: E402
from rsd_sci.presets import NETWORK_KEYS, PRESETS  # noqa: E402
from rsd_sci.diffusion.teacher_sampling import sample_teacher  # noqa: E402
from rsd_sci.distill.distiller import generate  # noqa: E402
from rsd_sci.distill.draws import KeyedDraws  # noqa: E402

GOAL, LIMIT = 30.0, 35.0   # the issue: one-step images/s ≥ 30× Heun's; 35 network calls against 1
STEPS = 18                 # Heun steps: 2·18 − 1 = 35 denoiser calls
SAMPLING_CASES = ("mri-1coil", "ct-60/180", "tweedie")
CALLS = {"one-step": 1, "heun": 2 * STEPS - 1, "network": 1}


@dataclasses.dataclass
class Row:
    case: str
    preset: str
    batch: str
    channels: str = ""
    rounds: str = ""
    one_step: str = ""
    heun: str = ""
    ratio: str = ""
    vs_network: str = ""
    goal: str = ""


HEADER = Row("case", "preset", "batch", "channels img+cond", "rounds", "one-step images/s (median)",
             f"Heun ({STEPS} steps, {CALLS['heun']} calls) images/s (median)",
             "ratio Heun / one-step: median (best)", "one-step / 1 call, Heun / 35 calls (median)",
             f"goal ≥ {GOAL:.0f}×, limit {LIMIT:.0f}×")


def build_case(case: str, train_set, preset: str, batch: int, seed: int, device: torch.device,
               counts: dict, active: list) -> tuple[dict, object, int]:
    """The three contenders of one case (name -> zero-argument call), the teacher, its parameter count."""
    network = {k: PRESETS[preset][k] for k in NETWORK_KEYS}
    torch.manual_seed(seed)
    teacher = build_model(train_set.info.operator, network, float(train_set.column("sigma_n").max()))
    teacher.denoiser.to(device).eval()
    G = copy.deepcopy(teacher.denoiser)                       # the generator starts as the teacher's copy
    ops = load_batch(train_set, list(range(batch)), device)
    captured: list = []

    def hook(module, args, output):
        counts[active[0]] += 1
        if module is G and not captured:
            captured.extend(a.detach() if torch.is_tensor(a) else a for a in args)

    for module in (teacher.denoiser, G):
        module.register_forward_hook(hook)
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if device.type == "cuda" \
        else contextlib.nullcontext

    def one_step():
        with torch.no_grad(), autocast():
            m = teacher.family.measure(ops)
            return generate(G, m, KeyedDraws(m.index, seed, 0))

    def heun():
        with torch.no_grad(), autocast():
            return sample_teacher(teacher, teacher.family.measure(ops), seed=seed, steps=STEPS, sampler="auto",
                                  truncate=False, stop_sigma=0.0)

    def network():
        with torch.no_grad(), autocast():
            return G(*captured)

    def tagged(kind, call):
        def run():
            active[0] = (case, kind)
            return call()
        return run

    for kind in CALLS:
        counts[(case, kind)] = 0
    return ({(case, kind): tagged(kind, call) for kind, call in
             (("one-step", one_step), ("heun", heun), ("network", network))},
            teacher, count_parameters(teacher.denoiser))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default=None, help="network preset (default tiny on cpu, base on cuda)")
    p.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5 on cpu, 10 on cuda)")
    p.add_argument("--batch", type=int, default=None, help="images per batch (default 8 on cpu, 64 on cuda)")
    p.add_argument("--size", type=int, default=64, help="image size (default 64)")
    p.add_argument("--cases", default="mri-1coil,ct-60/180",
                   help=f"comma-separated cases (default mri-1coil,ct-60/180; from {','.join(SAMPLING_CASES)})")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny preset, size 32, 2 rounds")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    preset = args.preset or ("base" if device.type == "cuda" else "tiny")
    batch = args.batch or (64 if device.type == "cuda" else 8)
    size, rounds = args.size, args.rounds or (10 if device.type == "cuda" else 5)
    if args.quick:
        preset, size, rounds = args.preset or "tiny", 32, args.rounds or 2
    cases = args.cases.split(",")
    if preset not in PRESETS:
        p.error(f"unknown preset {preset!r} ({', '.join(PRESETS)})")
    for name in cases:
        if name not in SAMPLING_CASES:
            p.error(f"unknown case {name!r} ({', '.join(SAMPLING_CASES)})")
    if rounds < 1 or batch < 1:
        p.error("--rounds and --batch must be at least 1")

    wall = time.perf_counter()
    print("\n".join(train_environment(device)))
    print(f"run: preset {preset}, batch {batch}, {size}×{size}, {rounds} rounds; seconds per batch, best and "
          f"median over rounds; {'bf16 autocast' if device.type == 'cuda' else 'float32'}, torch.no_grad()\n")
    rows: list[Row] = []
    notes: list[str] = []
    counts: dict = {}
    active: list = [None]
    with tempfile.TemporaryDirectory(prefix="rsd-bench-sampling-") as folder:
        sets = make_sets(size, batch, 2, args.seed, Path(folder), cases)
        contenders, teachers, params = {}, {}, {}
        for case in cases:
            calls, teachers[case], params[case] = build_case(case, sets[case][0], preset, batch, args.seed,
                                                             device, counts, active)
            contenders.update(calls)
        sync = make_sync(device)
        clock = time.perf_counter()
        with Load() as load:
            times = interleave(contenders, rounds, {name: sync for name in contenders})
        timed_s = time.perf_counter() - clock
    for name, n in counts.items():  # every call (the warm-up included) made the expected network calls
        if n != CALLS[name[1]] * (rounds + 1):
            raise RuntimeError(f"{name}: {n} network calls in {rounds + 1} calls, expected "
                               f"{CALLS[name[1]]} each")
    for case in cases:
        one, heun, net = (times[(case, kind)] for kind in CALLS)
        r = median(heun) / median(one)
        family = teachers[case].family
        rows.append(Row(case, preset, str(batch), f"{family.channels} + {family.cond_channels}", str(len(one)),
                        f"{batch / median(one):,.1f}", f"{batch / median(heun):,.2f}", ratio(heun, one),
                        f"{median(one) / median(net):.2f}×, {median(heun) / (CALLS['heun'] * median(net)):.2f}×",
                        f"{'met' if r >= GOAL else 'NOT met'} ({r:.1f}×)"))
        notes.append(f"{case}: {CASES[case][2]}, teacher member {teachers[case].member}, "
                     f"{params[case] / 1e6:.3f} M parameters; median (best) per batch: one-step "
                     f"{median(one) * 1e3:.3g} ms ({best(one) * 1e3:.3g}), Heun {median(heun) * 1e3:.4g} ms "
                     f"({best(heun) * 1e3:.4g}), one network call {median(net) * 1e3:.3g} ms "
                     f"({best(net) * 1e3:.3g}); data made in {sets[case][1]:.1f} s")
    print_table(HEADER, rows)
    print()
    notes.append(f"network calls per sampler call, counted by a forward hook over all {rounds + 1} calls "
                 f"(warm-up included): one-step 1, Heun {CALLS['heun']}, network 1 (checked)")
    notes.append(f"timed rounds and warm-up {timed_s:.0f} s; other processes used {load.others()} of the CPUs")
    for note in notes:
        print(f"- {note}")
    print(f"- total wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
