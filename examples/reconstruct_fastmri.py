"""Reconstruct a folder of fastMRI files with a trained model and score them with fastMRI's metrics.

    python examples/reconstruct_fastmri.py --model runs/knee --input knee_multicoil_val --out recon
    python examples/reconstruct_fastmri.py --model runs/knee --input val --out recon --method adps --n-samples 4
    python examples/reconstruct_fastmri.py --input val --out recon --method cg-sense --accel 4   # no model

Each file is read as `rsd-sci reconstruct` reads it (the model's mask seeded by the file name, unless the
file has its own `mask`), reconstructed a batch of slices at a time, written in fastMRI's submission
format (dataset `reconstruction` (S, h, w), the file's reconstruction size and units; `std` too for
several A-DPS samples) and scored against the file's `reconstruction_rss` (or `reconstruction_esc`):
NMSE, PSNR and SSIM per volume, then their mean ± std, as fastMRI's evaluate computes them, also in
OUT/metrics.json. A smoke run: `--steps 2`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import h5py
import torch

import rsd_sci

TARGET_KEYS = ("reconstruction_rss", "reconstruction_esc")


def read_target(path: Path):
    """The file's fully sampled target volume (S, h, w), or None (a test file has none)."""
    with h5py.File(path, "r") as f:
        key = next((k for k in TARGET_KEYS if k in f), None)
        return None if key is None else f[key][()]


def reconstruct_scan(scan: rsd_sci.Scan, args, model) -> tuple:
    """(mean, std) of every slice in the file's units, (S, h, w) float32 each (std None for one sample)."""
    means, stds = [], []
    for start in range(0, len(scan), args.batch):
        m = scan.measurement(range(start, min(len(scan), start + args.batch)), args.device)
        mean, std = rsd_sci.reconstruct(m, args.method, model, n_samples=args.n_samples, steps=args.steps,
                                        seed=args.seed)
        means.append(mean.cpu())
        stds.append(None if std is None else std.cpu())
    std = None if stds[0] is None else scan.to_file_units(torch.cat(stds), std=True)
    return scan.to_file_units(torch.cat(means)), std


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, required=True, help="a folder of fastMRI .h5 files")
    parser.add_argument("--out", type=Path, required=True, help="a folder for the reconstructions")
    parser.add_argument("--model", help="a run folder or model file (adps: its teacher, generator: its generator)")
    parser.add_argument("--method", default="generator", choices=rsd_sci.METHODS)
    parser.add_argument("--n-samples", type=int, default=1, help="adps: posterior samples (their mean and std)")
    parser.add_argument("--steps", type=int, help="adps levels (300), generator-prior iterations (200), ...")
    parser.add_argument("--accel", type=float, help="without a model: the acceleration of fully sampled files")
    parser.add_argument("--batch", type=int, default=8, help="slices per batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    model = None
    if args.model is not None:
        model = rsd_sci.load_model(args.model, args.device, kind="teacher" if args.method == "adps" else None)
    args.out.mkdir(parents=True, exist_ok=True)
    scores = {}
    for path in sorted(args.input.glob("*.h5")):
        scan = rsd_sci.read_scan(path, model, accel=args.accel)
        recon, std = reconstruct_scan(scan, args, model)
        with h5py.File(args.out / path.name, "w") as f:
            f.create_dataset("reconstruction", data=recon)
            if std is not None:
                f.create_dataset("std", data=std)
        target = read_target(path)
        if target is not None:
            scores[path.name] = rsd_sci.volume_metrics(target, recon)
            print(f"{path.name}: " + ", ".join(f"{k} {v:.4g}" for k, v in scores[path.name].items()))
    if not scores:
        print(f"wrote {args.out}; no file had a target to score against")
        return {}
    summary = rsd_sci.summarize(scores)
    mean, std = summary["mean"], summary["std"]
    print("mean ± std: " + ", ".join(f"{k} {mean[k]:.4g} ± {std[k]:.2g}" for k in mean))
    (args.out / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


if __name__ == "__main__":
    main()
