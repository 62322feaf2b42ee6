"""Teacher training-step cost: plain EDM against each corruption-aware loss, printed as one table.

    python benchmarks/train_step.py                   # tiny and small presets on the CPU (~3.5 min on 2 cores)
    python benchmarks/train_step.py --quick           # tiny only, 32×32, 2 rounds: a smoke run (~20 s)
    python benchmarks/train_step.py --device cuda     # base preset, bf16 autocast, batch 64 (GPU)

One training step, as `rsd-sci train --stage teacher` runs it (`rsd_sci.engine.teacher.train_teacher`):
read the step's global batch from the measurement set (`global_batch_indices`, `load_batch`), set the
learning rate, the batch's measurement model (`family.measure`: its operator), `batch_loss` (keyed σ
and noise, the Ambient further operator, the member's loss) under bf16 autocast on CUDA, zero_grad, backward, `clip_grad_norm_` (1.0),
Adam, the EMA update, and reading the loss and the gradient norm as floats (a device sync on CUDA).

Cases (phantom data made in memory with `rsd_sci.data.make.make_measurement_set` into a temporary folder,
n_train 32 (at least the batch), n_test 8, size × size), each on the SAME backbone preset and batch:

    plain        image, corruption noise, σ_n 0, loss member "plain" (plain EDM: the reference)
    tweedie      image, corruption noise, σ_n 0.2: Ambient-Tweedie (DSD)
    inpaint      image, inpaint p 0.5 (δ 0.1): pixel-mask Ambient Diffusion
    mri-1coil    MRI single-coil, R = 4 random line mask: measurement-domain Ambient
    mri-8coil    MRI 8 coils (birdcage-simulated; ESPIRiT maps as `data make` stores them), R = 4
    ct-60/180    CT, 60 of 180 views (sparse): measurement-domain Ambient with FBP input, ramp-weighted loss

The network's image and conditioning channels differ by case (plain and tweedie 1 + 0, inpaint 1 + 1,
MRI 2 + 2, CT 1 + 1), which changes the first and last convolutions only. To separate the loss and
physics cost from the network cost, every case is ALSO timed as "network only": the same step (same
batch reading, keyed σ and noise, optimiser, EMA) with the loss replaced by plain EDM,
λ(σ)·mean‖D(x + σn, σ, c) − x‖², on a fixed input x and conditioning c of the case's channel counts
(the case's network image and conditioning of its first batch, computed once outside the timing).
Columns: "vs plain EDM" = this row's step time / the plain case's full step (goal in the issue: the
Ambient losses cost at most 15 % over plain EDM); "full / network only" = the case's full step / its own
network-only step, i.e. the loss and physics overhead at equal network shape.

Timing: every contender (case × {full, network only}) gets its own model (same seed, so equal shapes
start from equal weights), Adam and EMA, and 2 untimed warm-up steps; then `--rounds` rounds in which
each contender runs one step, in an order rotating from round to round, so load from other processes
falls on all alike. Best and median over the rounds. Presets after the first run max(2, rounds // 3)
rounds (small is ~4× slower than tiny).

Peak memory of one step (the second warm-up step, profiled; not timed): the most memory torch's
allocator held during the step ABOVE what was live when it started (parameters, gradients, Adam and
EMA state, which are reported separately as "state"): on CUDA from `torch.cuda.max_memory_allocated`
(after `reset_peak_memory_stats`); on the CPU from torch.profiler's allocation events
(`profile_memory=True`: a running sum of every allocation and free by torch's CPU allocator; numpy
buffers, e.g. the HDF5 reads, are not counted). The process's resident set (ru_maxrss) is useless for
this: it only ever grows and the contenders share one process.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Load, best, environment, make_sync, median, print_table, ratio  # noqa: E402  (sibling)

from rsd_sci.config import TrainConfig  # noqa: E402
from rsd_sci.data.batches import global_batch_indices, load_batch  # noqa: E402
from rsd_sci.data.make import MakeSpec, make_measurement_set  # noqa: E402
from rsd_sci.data.measurement_set import open_measurement_set  # noqa: E402
from rsd_sci.diffusion.model import build_model  # noqa: E402
from rsd_sci.diffusion.networks import count_parameters  # noqa: E402
from rsd_sci.presets import NETWORK_KEYS, PRESETS  # noqa: E402
from rsd_sci.diffusion.precond import loss_weight  # noqa: E402
from rsd_sci.engine.ema import EMA  # noqa: E402
from rsd_sci.engine.loop import set_lr, warmup_lr  # noqa: E402
from rsd_sci.engine.teacher import batch_loss, draws  # noqa: E402

GOAL = 1.15  # the issue: Ambient losses cost at most 15 % over plain EDM

# name -> (MakeSpec keywords, loss member forced or None for the data's own, description)
CASES: dict[str, tuple[dict, str | None, str]] = {
    "plain": (dict(modality="image", corruption="noise", sigma_n=0.0), "plain",
              "plain EDM (image, σ_n 0)"),
    "tweedie": (dict(modality="image", corruption="noise", sigma_n=0.2), None,
                "Ambient-Tweedie (image noise σ_n 0.2)"),
    "inpaint": (dict(modality="image", corruption="inpaint", p=0.5), None,
                "pixel-mask Ambient (inpaint p 0.5)"),
    "mri-1coil": (dict(modality="mri", accel=4.0, coils=1), None, "MRI 1 coil, R = 4 (meas.-domain Ambient)"),
    "mri-8coil": (dict(modality="mri", accel=4.0, coils=8), None, "MRI 8 coils, R = 4 (meas.-domain Ambient)"),
    "ct-60/180": (dict(modality="ct", views=60, n_angles=180), None, "CT 60/180 views (meas.-domain Ambient)"),
}


# ---- data and contenders -----------------------------------------------------------------------------
def make_sets(size: int, n_train: int, n_test: int, seed: int, folder: Path, cases: list[str]) -> dict:
    """One phantom measurement set per case in `folder`; returns name -> (train set, seconds to make)."""
    sets = {}
    for name in cases:
        kwargs, _, _ = CASES[name]
        if kwargs["modality"] == "mri" and size < 64:  # ESPIRiT needs >= 5 calibration lines (0.08·64 = 5)
            kwargs = dict(kwargs, center_fraction=6 / size)
        out = folder / name.replace("/", "_")
        start = time.perf_counter()
        make_measurement_set(MakeSpec(source="phantom", size=size, n_train=n_train, n_test=n_test, seed=seed,
                                      **kwargs), out)
        train_set, _ = open_measurement_set(out)
        sets[name] = (train_set, time.perf_counter() - start)
    return sets


@dataclasses.dataclass
class Contender:
    case: str
    variant: str            # "full" | "network only"
    teacher: object
    params: int
    step: Callable[[], None]           # one training step
    profile_step: Callable[[], int]    # two steps (CPU) or one (CUDA); the last one's peak memory, bytes
    models: tuple                      # (D, optimizer, ema)
    state_bytes: int = 0


def state_bytes(D: torch.nn.Module, optimizer: torch.optim.Optimizer, ema: EMA) -> int:
    """Bytes of parameters + gradients + Adam moments + EMA copy (what lives between steps)."""
    total = 0
    for p in D.parameters():
        total += 2 * p.numel() * p.element_size()  # the parameter and its gradient
        for t in optimizer.state.get(p, {}).values():
            if torch.is_tensor(t):
                total += t.numel() * t.element_size()
    total += sum(t.numel() * t.element_size() for t in ema.module.state_dict().values())
    return total


def network_only_inputs(teacher, train_set, batch_size: int, seed: int, device) -> tuple:
    """The case's network image and conditioning for its first batch, computed once (fixed inputs)."""
    batch = load_batch(train_set, global_batch_indices(len(train_set), batch_size, 0, seed).tolist(), device)
    with torch.no_grad():
        m = teacher.family.measure(batch)
        x = m.network_input().float().contiguous()
        cond = None
        if teacher.family.kind == "ambient":
            cond = m.further(seed).cond()
            cond = None if cond is None else cond.float().contiguous()
    return x, cond


def network_only_loss(D, m, seed: int, step: int, x: torch.Tensor, cond) -> torch.Tensor:
    """Plain EDM on the fixed input x with conditioning cond: the network cost at the case's shape."""
    sigma, noise = draws(m, seed, step)
    s = sigma.float()
    x0 = D(x + s.view(-1, 1, 1, 1) * noise.to(x.dtype), s, cond)
    return (loss_weight(s) * (x0.float() - x).square().flatten(1).mean(dim=1)).mean()


def build_contender(case: str, variant: str, train_set, preset: str, batch_size: int, seed: int,
                    device: torch.device) -> Contender:
    _, member, _ = CASES[case]
    settings = dataclasses.asdict(TrainConfig(preset=preset).resolved())   # the preset's and TrainConfig's own
    network = {k: PRESETS[preset][k] for k in NETWORK_KEYS}
    torch.manual_seed(seed)  # equal shapes start from equal weights
    teacher = build_model(train_set.info.operator, network, float(train_set.column("sigma_n").max()))
    if member is not None:
        teacher = dataclasses.replace(teacher, member=member)
    D = teacher.denoiser.to(device)
    ema = EMA(D, settings["ema_half_life_images"])
    optimizer = torch.optim.Adam(D.parameters(), lr=settings["lr"], betas=(0.9, 0.999))
    use_bf16 = device.type == "cuda"
    fixed = network_only_inputs(teacher, train_set, batch_size, seed, device) if variant != "full" else None
    counter = {"step": 0}

    def step() -> None:
        """One training step, as `train_teacher`'s step_fn runs it (minus logging)."""
        s = counter["step"]
        indices = global_batch_indices(len(train_set), batch_size, s, seed)
        m = teacher.family.measure(load_batch(train_set, indices.tolist(), device))
        set_lr(optimizer, warmup_lr(s, settings["lr"], settings["warmup_steps"]))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            if fixed is None:
                loss = batch_loss(D, teacher, m, seed, s)
            else:
                loss = network_only_loss(D, m, seed, s, *fixed)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(D.parameters(), settings["grad_clip"])
        optimizer.step()
        ema.update(D, (s + 1) * batch_size, batch_size)
        float(loss.detach()), float(grad_norm)
        counter["step"] += 1

    return Contender(case, variant, teacher, count_parameters(D), step, lambda: peak_step_memory(step, device),
                     (D, optimizer, ema))


class ScalarDenoiser(torch.nn.Module):
    """D(x, σ, c) = w·x: a denoiser of negligible cost, so a step with it times the loss and physics alone."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(0.5))

    def forward(self, x, sigma, cond=None):
        return self.w * x


def breakdown(cases: list[str], sets: dict, batch_size: int, seed: int, device: torch.device,
              rounds: int) -> dict[str, tuple[list[float], list[float]]]:
    """Per case, seconds of (load_batch alone, loss and physics alone: batch_loss with `ScalarDenoiser`
    plus its backward), interleaved over `rounds` rounds after one warm-up each. No network involved."""
    sync = make_sync(device)
    jobs = {}
    for case in cases:
        train_set = sets[case][0]
        _, member, _ = CASES[case]
        teacher = build_model(train_set.info.operator, "tiny", float(train_set.column("sigma_n").max()))
        if member is not None:
            teacher = dataclasses.replace(teacher, member=member)
        D = ScalarDenoiser().to(device)
        counter = {"step": 0}

        def job(train_set=train_set, teacher=teacher, D=D, counter=counter):
            s = counter["step"]
            sync()
            t0 = time.perf_counter()
            batch = load_batch(train_set, global_batch_indices(len(train_set), batch_size, s, seed).tolist(), device)
            sync()
            t1 = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                loss = batch_loss(D, teacher, teacher.family.measure(batch), seed, s)
            D.zero_grad(set_to_none=True)
            loss.backward()
            float(loss.detach())
            sync()
            counter["step"] += 1
            return t1 - t0, time.perf_counter() - t1

        jobs[case] = job
    out = {case: ([], []) for case in cases}
    for case in cases:
        jobs[case]()
    for r in range(rounds):
        for case in cases[r % len(cases):] + cases[:r % len(cases)]:
            load, loss = jobs[case]()
            out[case][0].append(load)
            out[case][1].append(loss)
    return out


# ---- memory ------------------------------------------------------------------------------------------
@contextlib.contextmanager
def quiet():
    """Silence the profiler's own lines on stdout/stderr (file-descriptor level, C++ prints too)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def peak_step_memory(step, device: torch.device) -> int:
    """Peak bytes allocated by torch during one call of `step`, above what was live at its start."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    # the allocator reports no free for a block allocated before profiling began, so profile a step
    # before the measured one too: the measured step's frees of the previous step's tensors (its
    # gradients, its batch) are then known
    with quiet(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
        with torch.profiler.record_function("measured step"):
            step()
    events, window = [], None

    def walk(node):
        nonlocal window
        if node.tag == _EventType.Allocation:
            events.append((node.start_time_ns, int(node.extra_fields.alloc_size)))
        elif node.name == "measured step":
            window = (node.start_time_ns, node.end_time_ns)
        for child in node.children:
            walk(child)

    for root in prof.profiler.kineto_results.experimental_event_tree():
        walk(root)
    if window is None:
        return -1
    events.sort()
    live, at_start, peak = 0, None, None
    for t, size in events:
        if at_start is None and t >= window[0]:
            at_start = peak = live
        live += size
        if at_start is not None and t <= window[1]:
            peak = max(peak, live)
    return -1 if at_start is None else peak - at_start


# ---- the table ---------------------------------------------------------------------------------------
@dataclasses.dataclass
class Row:
    preset: str
    case: str
    step: str
    channels: str = ""
    rounds: str = ""
    best: str = ""
    median: str = ""
    rate: str = ""
    vs_plain: str = ""
    vs_network: str = ""
    memory: str = ""
    goal: str = ""


HEADER = Row("preset", "case (loss)", "step", "channels img+cond", "rounds", "best", "median",
             "images/s (median)", "vs plain EDM: median (best)", "full / network only: median (best)",
             "peak step memory (state)", "goal")


def seconds(t: float) -> str:
    return f"{t:.3g} s" if t >= 1 else f"{t * 1e3:.3g} ms"


def mib(n: int) -> str:
    return "n/a" if n < 0 else f"{n / 2**20:,.0f} MiB"


# ---- main --------------------------------------------------------------------------------------------
def run_preset(preset: str, contenders: list[Contender], rounds: int, device: torch.device, batch: int,
               rows: list[Row], notes: list[str]) -> None:
    sync = make_sync(device)
    names = [(c.case, c.variant) for c in contenders]
    by_name = dict(zip(names, contenders))
    memory = {}
    clock = time.perf_counter()
    for c in contenders:  # warm-up: 2 untimed steps each; the second one's peak memory is measured
        if device.type == "cuda":
            c.step()
        memory[(c.case, c.variant)] = c.profile_step()  # CPU: profiles both warm-up steps
        c.state_bytes = state_bytes(*c.models)
        sync()
    warmup_s = time.perf_counter() - clock
    times = {n: [] for n in names}
    with Load() as load:
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                sync()
                start = time.perf_counter()
                by_name[name].step()
                sync()
                times[name].append(time.perf_counter() - start)
    plain = times[("plain", "full")]
    for case in dict.fromkeys(c.case for c in contenders):
        for variant in ("full", "network only"):
            c, ts = by_name[(case, variant)], times[(case, variant)]
            family = c.teacher.family
            label = f"{case} ({c.teacher.member})" if variant == "full" else case
            goal = ""
            if variant == "full" and case != "plain":
                met = median(ts) / median(plain) <= GOAL
                goal = f"≤ {GOAL:.2f}× plain: {'met' if met else 'NOT met'}"
            rows.append(Row(preset, label, variant, f"{family.channels} + {family.cond_channels}", str(len(ts)),
                            seconds(best(ts)), seconds(median(ts)), f"{batch / median(ts):.3g}",
                            ratio(ts, plain), ratio(ts, times[(case, "network only")]) if variant == "full" else "",
                            f"{mib(memory[(case, variant)])} ({mib(c.state_bytes)})", goal))
    params = sorted({(c.params, f"{c.teacher.family.channels}+{c.teacher.family.cond_channels}") for c in contenders})
    notes.append(f"{preset}: parameters " + ", ".join(f"{p / 1e6:.3f} M ({ch} channels)" for p, ch in params)
                 + f"; warm-up {warmup_s:.0f} s, timed rounds {sum(map(sum, times.values())):.0f} s; "
                 f"other processes used {load.others()} of the CPUs during the timed rounds")


def train_environment(device: torch.device) -> list[str]:
    import monai

    return environment(device, {"monai": monai.__version__})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--presets", default=None,
                   help="comma-separated network presets (default: tiny,small on cpu, base on cuda)")
    p.add_argument("--rounds", type=int, default=12,
                   help="timed rounds for the first preset (default 12); later presets max(2, rounds // 3)")
    p.add_argument("--batch", type=int, default=None, help="images per step (default 8 on cpu, 64 on cuda)")
    p.add_argument("--size", type=int, default=64, help="image size (default 64)")
    p.add_argument("--cases", default=",".join(CASES), help=f"comma-separated cases (default all: {','.join(CASES)})")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny preset, size 32, 2 rounds")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    presets = (args.presets or ("base" if device.type == "cuda" else "tiny,small")).split(",")
    batch = args.batch or (64 if device.type == "cuda" else 8)
    size, rounds = args.size, args.rounds
    if args.quick:
        presets, size, rounds = (args.presets.split(",") if args.presets else ["tiny"]), 32, 2
    cases = args.cases.split(",")
    for name in presets:
        if name not in PRESETS:
            p.error(f"unknown preset {name!r} ({', '.join(PRESETS)})")
    for name in cases:
        if name not in CASES:
            p.error(f"unknown case {name!r} ({', '.join(CASES)})")
    if "plain" not in cases:
        p.error("the cases must include plain (the reference)")
    if rounds < 1 or batch < 1:
        p.error("--rounds and --batch must be at least 1")

    wall = time.perf_counter()
    print("\n".join(train_environment(device)))
    print(f"run: presets {','.join(presets)}, batch {batch}, {size}×{size}, rounds {rounds} for the first preset "
          f"(then max(2, {rounds} // 3)); times per training step, best and median over rounds; "
          f"{'bf16 autocast' if device.type == 'cuda' else 'float32'}\n")
    rows: list[Row] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="rsd-bench-train-") as folder:
        sets = make_sets(size, max(32, batch), 8, args.seed, Path(folder), cases)
        notes.append("cases: " + "; ".join(f"{name} = {CASES[name][2]}" for name in cases))
        notes.append("data: " + ", ".join(f"{n} {t:.1f} s" for n, (_, t) in sets.items())
                     + f" to make (n_train {max(32, batch)}, n_test 8, {size}×{size}, phantoms, seed {args.seed})")
        for i, preset in enumerate(presets):
            contenders = []
            for case in cases:
                for variant in ("full", "network only"):
                    contenders.append(build_contender(case, variant, sets[case][0], preset, batch, args.seed,
                                                      device))
            run_preset(preset, contenders, rounds if i == 0 else max(2, rounds // 3), device, batch, rows, notes)
            del contenders
        parts = breakdown(cases, sets, batch, args.seed, device, max(rounds, 5))
        notes.append("without the network, median (best) per step, batch " + str(batch) + ": "
                     + "; ".join(f"{case}: load_batch {seconds(median(ld))} ({seconds(best(ld))}), loss and physics "
                                 f"forward + backward {seconds(median(ls))} ({seconds(best(ls))})"
                                 for case, (ld, ls) in parts.items())
                     + " (the denoiser replaced by D = w·x)")
    print_table(HEADER, rows)
    print()
    notes.append("peak step memory: torch allocations during one step above what was live at its start "
                 + ("(torch.cuda.max_memory_allocated)" if device.type == "cuda" else
                    "(CPU: torch.profiler allocation events; numpy buffers not counted)")
                 + "; state = parameters + gradients + Adam moments + EMA copy")
    for note in notes:
        print(f"- {note}")
    print(f"- total wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
