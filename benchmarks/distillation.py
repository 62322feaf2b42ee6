"""Distillation settings side by side, from the same trained teachers: how close the one-step generator
gets to CLEAN held-out images, and whether the held-out signals (no clean data) pick its best iteration.

    python benchmarks/distillation.py --teachers runs/mri-t0 runs/mri-t1 --variants projected full \\
        --iterations 200 --every 50 [--out runs/distill-sweep] [--figures]

Each teacher is a run directory with teacher.safetensors and data/ (`rsd-sci train --stage teacher`); its
seed is the run's. Each variant distils it with the engine's own `train_distill` (the run's config with
the variant's settings) into OUT/<run>-<variant>/, and at every `--every` iterations the generator's EMA
is measured: the signals it logs (`selection_signal`, `heldout_sw`, `measurement_spectrum`) and, against the 32
clean held-out images, the multi-scale patch sliced Wasserstein (SW) and power-spectrum distance (PSD) of
32 one-step samples (the held-out operators, fixed draws), and their spread (how much they differ from
one another: mode collapse). The teacher's default sampler on the same operators is the line to beat.
Then: which iteration each signal selects and the clean SW/PSD there. `--figures` also writes
OUT/<run>-<variant>/samples-<iteration>.png at every evaluation and samples-teacher.png (the clean images
above the samples), to look at what the numbers say.
Run alone: the timings (seconds per iteration) are this machine's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsd_sci.apps import evaluate  # noqa: E402
from rsd_sci.config import TrainConfig  # noqa: E402
from rsd_sci.data.batches import load_batch  # noqa: E402
from rsd_sci.data.measurement_set import open_measurement_set  # noqa: E402
from rsd_sci.diffusion.teacher_sampling import sample_teacher  # noqa: E402
from rsd_sci.distill.distiller import generate  # noqa: E402
from rsd_sci.distill.draws import KeyedDraws  # noqa: E402
from rsd_sci.engine import distributed  # noqa: E402
from rsd_sci.engine.distillation import train_distill  # noqa: E402
from rsd_sci.engine.model import load_model  # noqa: E402
from rsd_sci.engine.sampling import to_output  # noqa: E402
from rsd_sci.metrics.distribution import sample_spread  # noqa: E402
from rsd_sci.report.figures import samples_figure  # noqa: E402

VARIANTS = {   # the settings each variant changes (TrainConfig keys); the rest is the teacher run's preset
    "projected": {},
    "full": {"loss_space": "full"},
    "floor": {"sigma_floor": 0.1},
    "full-floor": {"loss_space": "full", "sigma_floor": 0.1},
    "rates-x6": {"g_lr": 1.2e-4, "fake_lr": 3e-4},   # 6x the first CPU rates, 2x the presets'
    "fake2": {"fake_updates": 2},
    "full-fake2": {"loss_space": "full", "fake_updates": 2},
    "init-1.5": {"sigma_init": 1.5},
    "init-1": {"sigma_init": 1.0},
    "init-0.5": {"sigma_init": 0.5},
    "fake-x2": {"fake_lr": 3e-4},
    "fake-x4": {"fake_lr": 6e-4},
    "full-t500": {"loss_space": "full", "t_max": 500},
    "g-half": {"g_lr": 3e-5},
    "alpha-1": {"alpha": 1.0},
    "fake2-floor": {"fake_updates": 2, "sigma_floor": 0.1},
    "fake4": {"fake_updates": 4},
    "warm50": {"fake_warmup": 50},
    "warm100": {"fake_warmup": 100},
    "gan-0": {"gan_weight": 0.0},         # no critic, for teacher runs trained with one
    "gan-100": {"gan_weight": 100.0},     # the SiD term's gradient is ~3e4 times an untrained critic's
    "gan-1000": {"gan_weight": 1000.0},
    "gan-10000": {"gan_weight": 10000.0},
    "gan-10000-rates-x2": {"gan_weight": 10000.0, "g_lr": 1.2e-4, "fake_lr": 3e-4},   # the critic at 2x tiny's rates
    "gan-10000-rates-x3": {"gan_weight": 10000.0, "g_lr": 1.8e-4, "fake_lr": 4.5e-4},
    "gan-10000-init-1.5": {"gan_weight": 10000.0, "sigma_init": 1.5},
    "gan-10000-b4": {"gan_weight": 10000.0, "batch": 4},              # half the images per iteration
    "gan-10000-fake2": {"gan_weight": 10000.0, "fake_updates": 2},
    "gan-3000": {"gan_weight": 3000.0},
    "adm-1000": {"gan_weight": 10000.0, "adm_weight": 1000.0},     # the aligner beside the critic
    "adm-10000": {"gan_weight": 10000.0, "adm_weight": 10000.0},
    "fake2-gan-1000": {"fake_updates": 2, "gan_weight": 1000.0},
    "full-gan-10000": {"loss_space": "full", "gan_weight": 10000.0},
    "full-gan-30000": {"loss_space": "full", "gan_weight": 30000.0},
    "full-floor-gan-10000": {"loss_space": "full", "sigma_floor": 0.1, "gan_weight": 10000.0},
    "projected-gan-10000": {"loss_space": "projected", "gan_weight": 10000.0},
}
N_HELDOUT = 32
SIGNALS = ("selection_signal", "measurement_spectrum", "heldout_sw")   # the exported one's first


class CleanProbe:
    """Clean patch SW, PSD and spread of a generator's one-step samples on the held-out operators."""

    def __init__(self, teacher, test_set, seed: int, sigma_init: float):
        self.teacher, self.seed, self.sigma_init = teacher, seed, sigma_init
        n = min(N_HELDOUT, len(test_set))
        self.m = teacher.family.measure(load_batch(test_set, range(n), "cpu"))
        self.offset = float(evaluate.offsets_of(test_set, 1)[0])
        self.reference = evaluate.clean_targets(test_set, n)

    def view(self, x: torch.Tensor):
        return self.teacher.family.metric_view(to_output(self.teacher, x.float().cpu()), self.offset)

    def distances(self, images, figure: Path | None = None, row: str = "generator") -> dict:
        if figure is not None:
            title = "the teacher's sampler" if row == "teacher" else f"generator, iteration {figure.stem.split('-')[-1]}"
            samples_figure({"reference": self.reference, row: images}, figure, titles={row: title})
        d = evaluate.distribution_distances({"reference": self.reference, "x": images}, self.seed, names=("x",))["x"]
        return {"clean_sw": d["patch_sliced_wasserstein"], "clean_psd": d["power_spectrum_distance"],
                "spread": d["spread"]}

    def generator(self, G, figure: Path | None = None) -> dict:
        with torch.no_grad():
            x = generate(G, self.m, KeyedDraws(self.m.index, self.seed, 0), self.sigma_init)
        return self.distances(self.view(x), figure, "generator")

    def teacher_sampler(self, figure: Path | None = None) -> dict:
        with torch.no_grad():
            return self.distances(self.view(sample_teacher(self.teacher, self.m, seed=self.seed)), figure, "teacher")


def sweep(run: Path, variant: str, iterations: int, every: int, out: Path, figures: bool = False) -> dict:
    cfg = TrainConfig.from_yaml(run / "config.yaml")
    cfg = dataclasses.replace(cfg, stage="distill", teacher=str(run / "teacher.safetensors"), distill_steps=iterations,
                              heldout_every=every, checkpoint_every=10 ** 9, evaluate=False, **VARIANTS[variant]
                              ).resolved()   # settings newer than the run's config.yaml: the preset's
    info = distributed.DistInfo(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), is_main=True,
                                distributed=False)
    teacher = load_model(run / "teacher.safetensors", "cpu", kind="teacher", require_bank=False)
    _, test_set = open_measurement_set(run / "data")
    probe = CleanProbe(teacher, test_set, cfg.seed, cfg.sigma_init)
    rows, clock = [], {"t": time.perf_counter(), "probe": 0.0}

    def observe(done: int, G, metrics: dict) -> None:
        start = time.perf_counter()
        rows.append(dict(iteration=done, **{k: metrics[k] for k in SIGNALS},
                         **probe.generator(G, work / f"samples-{done}.png" if figures else None)))
        clock["probe"] += time.perf_counter() - start

    work = out / f"{run.name}-{variant}"
    if work.exists():
        raise SystemExit(f"{work} exists: remove it or choose another --out")
    work.mkdir(parents=True)
    cfg.to_yaml(work / "config.yaml")
    train_distill(cfg, work, run / "data", info, observe=observe)
    seconds = time.perf_counter() - clock["t"] - clock["probe"]
    return dict(run=run.name, seed=cfg.seed, variant=variant, rows=rows, teacher=probe.teacher_sampler(work / "samples-teacher.png" if figures else None),
                clean_spread=sample_spread(torch.from_numpy(probe.reference)), seconds_per_iteration=seconds / iterations)


def selected(result: dict, signal: str) -> dict:
    return min(result["rows"], key=lambda r: r[signal])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", type=Path, nargs="+", required=True)
    parser.add_argument("--variants", nargs="+", default=["projected", "full"], choices=tuple(VARIANTS))
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "distill-sweep")
    parser.add_argument("--figures", action="store_true", help="the samples at every evaluation as PNGs")
    args = parser.parse_args()
    torch.manual_seed(0)
    results = []
    for variant in args.variants:   # variants outer: a partial sweep still compares them on the first teacher
        for run in args.teachers:
            results.append(sweep(run, variant, args.iterations, args.every, args.out, args.figures))
            r = results[-1]
            print(f"{r['run']} {variant}: teacher sampler SW {r['teacher']['clean_sw']:.4f} PSD "
                  f"{r['teacher']['clean_psd']:.3f} spread {r['teacher']['spread']:.4f} (clean images "
                  f"{r['clean_spread']:.4f}); {r['seconds_per_iteration']:.2f} s/iteration", flush=True)
            for row in r["rows"]:
                print("   " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                      flush=True)
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "sweep.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\nrun, variant: clean SW / PSD of the generator selected by each signal (teacher sampler; last)")
    for r in results:
        t, last = r["teacher"], r["rows"][-1]
        cells = [f"{sig} it {selected(r, sig)['iteration']}: {selected(r, sig)['clean_sw']:.4f} / "
                 f"{selected(r, sig)['clean_psd']:.3f}" for sig in SIGNALS]
        print(f"{r['run']:>10} {r['variant']:<11} " + "  ".join(cells) +
              f"  (teacher {t['clean_sw']:.4f} / {t['clean_psd']:.3f}; last {last['clean_sw']:.4f} / {last['clean_psd']:.3f})")


if __name__ == "__main__":
    main()
