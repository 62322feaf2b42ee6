"""Quality of the learned prior: how close its samples are to clean held-out images, and how well it
reconstructs held-out measurements, next to the corrupted data, the teacher and classical methods. One
table from one run.

    python benchmarks/quality.py --modality mri [--preset quality] [--out runs/quality-mri-r4] [--device cpu]
    python benchmarks/quality.py --modality ct  [--preset quality] [--views 20]
    python benchmarks/quality.py --modality image --corruption noise|blur|inpaint|downsample [--control]

1. Train (or resume) the run as `rsd-sci train --modality M --preset P --no-eval --out OUT` does: the
   embedded phantoms (256 training measurements, 32 held-out ones with clean targets), teacher, then
   distillation (the generator exported at its lowest measurement_spectrum, no clean data).
2. Distribution distances to the 32 clean held-out images (multi-scale patch sliced Wasserstein and
   power-spectrum distance; lower is closer), for
       clean floor          32 OTHER clean phantoms through the same pipeline (seed + 1000): the value of
                            a perfect model at this sample size
       corrupted data       R(y) of 32 training measurements (zero-filled MRI, FBP CT)
       teacher              the default sampler, as `rsd-sci sample`: 18 levels, the Ambient projection at
                            every call, x̂0 at the last level ≥ 0.1 (MRI/CT Ambient teachers, whose x̂0
                            drifts back to the aliased input as σ → 0: docs/method.md)
       teacher to σ_min     the same integrated down to σ_min (35 calls)
       generator one step   1 call
       clean control        (--control) the teacher of the same network, preset and seed trained on the
                            CLEAN phantoms (fully sampled k-space, all 180 views, noiseless images: plain
                            diffusion, `train --accel 1` / `--views 180` / `--corruption noise --sigma-n
                            0`), its default sampler: what the budget allows without the corruption
3. Reconstruction of the held-out slices (the preset's eval_slices: all 32 for `quality`) by the
   baselines (MRI: zero-filled, CG-SENSE, L1-wavelet; CT: FBP, TV), A-DPS (one posterior sample, 300
   levels), the generator prior (200 iterations) and the generator prior at 50 iterations: NMSE, PSNR,
   SSIM (fastMRI semantics, mean ± std over slices) and wall seconds per slice on this machine.
4. OUT/quality.json with every number, OUT/report.md with the figures (`rsd-sci report`).

The `quality` preset is the tiny network trained longer (2,400 teacher steps, 400 distillation
iterations): about an hour on a 2-core CPU for one modality, a tiny budget next to the published
100+ Mimg. `--preset tiny` is the README's main job. A run folder that holds a trained teacher (and a
config.yaml) is resumed: only what is missing is trained.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rsd_sci.apps import evaluate  # noqa: E402
from rsd_sci.apps.train import run_training  # noqa: E402
from rsd_sci.config import TrainConfig  # noqa: E402
from rsd_sci.data.measurement_set import open_measurement_set  # noqa: E402
from rsd_sci.engine.sampling import draw_samples, to_output  # noqa: E402
from rsd_sci.report.document import write_report  # noqa: E402

SET_LABELS = {"floor": "clean floor (other phantoms)", "data": "corrupted data R(y)",
              "teacher": "teacher, default sampler", "to_sigma_min": "teacher to σ_min",
              "generator": "generator one step", "control": "clean control (teacher on clean data)"}
CLEAN_MAKE = {"mri": {"accel": 1.0}, "ct": {"views": 180}, "image": {"corruption": "noise", "sigma_n": 0.0}}


def teacher_to_sigma_min(teacher, n: int, settings, offset: float) -> np.ndarray:
    """n teacher samples integrated to σ_min (no early stop), in the metrics' view
    (`Measurement.metric_view`; offset: the data's normalisation offset)."""
    x = draw_samples(teacher, n, "heun", settings.sampler_steps, batch=settings.batch, seed=settings.seed,
                     device=settings.device, stop_sigma=0.0)
    return teacher.family.metric_view(to_output(teacher, x), offset)


def clean_floor(cfg: TrainConfig, n: int) -> np.ndarray:
    """n clean targets of phantoms made with another seed through `data make`'s own pipeline."""
    from rsd_sci.data.make import MakeSpec, make_measurement_set

    with tempfile.TemporaryDirectory() as tmp:
        make = dict(cfg.make, n_train=1, n_test=n)
        make_measurement_set(MakeSpec(modality=cfg.modality, seed=cfg.seed + 1000, **make), Path(tmp) / "floor")
        _, test = open_measurement_set(Path(tmp) / "floor")
        return evaluate.clean_targets(test, n)


def clean_control(cfg: TrainConfig, out: Path, n: int, settings) -> np.ndarray:
    """n samples of the clean control's teacher (the default sampler), trained (or resumed) in OUT/control."""
    control = dataclasses.replace(cfg, stage="teacher", make=dict(cfg.make, **CLEAN_MAKE[cfg.modality]),
                                  evaluate=False)
    written = run_training(control, out / "control")
    teacher = evaluate.load_models(out / "control", settings.device)["teacher"]
    _, test_set = open_measurement_set(written["data"])
    x = draw_samples(teacher, n, "heun", settings.sampler_steps, batch=settings.batch, seed=settings.seed,
                     device=settings.device)
    return teacher.family.metric_view(to_output(teacher, x), float(evaluate.offsets_of(test_set, 1)[0]))


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", choices=("mri", "ct", "image"), default="mri")
    parser.add_argument("--corruption", choices=("noise", "blur", "inpaint", "downsample"), default="noise")
    parser.add_argument("--control", action="store_true", help="also train the clean control (a row)")
    parser.add_argument("--preset", default="quality")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--accel", type=float, default=4.0)
    parser.add_argument("--views", type=int, default=None, help="CT views of 180 (data make's default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--distill-steps", type=int, default=None, help="distillation iterations (the preset's; "
                        "the CT runs of docs/benchmarks.md: 800)")
    args = parser.parse_args()
    make = {"mri": {"accel": args.accel}, "ct": {} if args.views is None else {"views": args.views},
            "image": {"corruption": args.corruption}}[args.modality]
    name = f"quality-{args.modality}-" + {"mri": f"r{args.accel:g}", "ct": f"v{args.views or 'default'}",
                                          "image": args.corruption}[args.modality]
    out = args.out or ROOT / "runs" / f"{name}-{args.preset}"
    saved = out / "config.yaml"
    cfg = (TrainConfig.from_yaml(saved).resolved() if saved.is_file() else
           TrainConfig(modality=args.modality, preset=args.preset, device=args.device, seed=args.seed, make=make,
                       distill_steps=args.distill_steps, evaluate=False).resolved(torch.cuda.is_available()))
    timing = {}
    start = time.perf_counter()
    written = run_training(dataclasses.replace(cfg, evaluate=False), out)
    timing["train_s"] = time.perf_counter() - start

    device = str(torch.device("cuda" if args.device == "cuda" else "cpu"))
    settings = evaluate.EvalSettings(n_samples=32, slices=cfg.eval_slices, posterior_samples=1, seed=cfg.seed,
                                     device=device)
    start = time.perf_counter()
    metrics = evaluate.evaluate_run(out, settings, written["data"])
    timing["evaluate_s"] = time.perf_counter() - start

    models = evaluate.load_models(out, device)
    train_set, test_set = open_measurement_set(written["data"])
    sets = {n: np.load(out / "samples" / f"{n}.npy") for n in ("reference", *evaluate.SETS)}
    start = time.perf_counter()
    sets["to_sigma_min"] = teacher_to_sigma_min(models["teacher"], len(sets["reference"]), settings,
                                                float(evaluate.offsets_of(test_set, 1)[0]))
    sets["floor"] = clean_floor(cfg, len(sets["reference"]))
    if args.control:
        sets["control"] = clean_control(cfg, out, len(sets["reference"]), settings)
    distances = evaluate.distribution_distances(sets, cfg.seed, names=tuple(SET_LABELS))
    fast = dataclasses.replace(settings, generator_steps=50)
    extra = evaluate.reconstructions(models, test_set, fast, methods=["generator"])
    S = min(settings.slices, len(test_set))
    extra_metrics = evaluate.reconstruction_metrics(extra, evaluate.clean_targets(test_set, S),
                                                      test_set.column("source", S))
    timing["extra_s"] = time.perf_counter() - start
    recon = dict(metrics["reconstruction"]) | {"generator (50 it)": extra_metrics["generator"]}

    result = dict(modality=args.modality, preset=cfg.preset, run=str(out), config=dataclasses.asdict(cfg),
                  distribution=distances, reconstruction=recon, slices=S, timing=timing,
                  selected_step=metrics["models"]["generator"]["selected_step"], torch=torch.__version__,
                  date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    (out / "quality.json").write_text(json.dumps(result, indent=2) + "\n")
    write_report(out)

    print(f"\n{args.modality.upper()} {make}, preset {cfg.preset}: {cfg.steps} teacher steps, {cfg.distill_steps} "
          f"distillation iterations (generator exported at iteration {result['selected_step']}); device {device}")
    print(f"training {timing['train_s'] / 60:.1f} min (0 if resumed), evaluation {timing['evaluate_s'] / 60:.1f} min\n")
    print(f"Distances to the {len(sets['reference'])} clean held-out images (lower is closer)")
    print(table([[SET_LABELS.get(k, "clean held-out images"), f"{d['patch_sliced_wasserstein']:.4f}"
                  if "patch_sliced_wasserstein" in d else "", f"{d['power_spectrum_distance']:.4f}"
                  if "power_spectrum_distance" in d else "", f"{d['spread']:.4f}"] for k, d in distances.items()],
                ["image set", "patch SW", "power-spectrum distance", "spread"]))
    print(f"\nReconstruction of {S} held-out slices (mean ± std over slices)")
    print(table([[m, f"{r['mean']['nmse']:.4f} ± {r['std']['nmse']:.4f}", f"{r['mean']['psnr']:.2f} ± {r['std']['psnr']:.2f}",
                  f"{r['mean']['ssim']:.3f} ± {r['std']['ssim']:.3f}", f"{r['seconds_per_slice']:.3g}"]
                 for m, r in recon.items()], ["method", "NMSE", "PSNR dB", "SSIM", "s / slice"]))
    g, t = distances["generator"]["patch_sliced_wasserstein"], distances["teacher"]["patch_sliced_wasserstein"]
    d = distances["data"]["patch_sliced_wasserstein"]
    print(f"\ngenerator closer to clean than the teacher: {'yes' if g < t else 'no'} ({g:.4f} vs {t:.4f}); "
          f"than the data: {'yes' if g < d else 'no'} ({g:.4f} vs {d:.4f})")
    print(f"wrote {out / 'quality.json'} and {out / 'report.md'}")


if __name__ == "__main__":
    main()
