"""A-DPS posterior samples of one held-out slice: their mean, and their pixel-wise std as an uncertainty map.

    python examples/posterior_uncertainty.py --model runs/mri-r4 --index 3 --n-samples 8 --out slice3.png
    python examples/posterior_uncertainty.py --model runs/ct-v20 --data sets/ct-60 --index 0 --out ct0.png

The slice is row `--index` of the test split of the run's measurement set (or of `--data SET`). Its K
posterior samples are A-DPS runs with seeds seed, ..., seed + K − 1 (what `reconstruct(..., n_samples=K)`
averages). The figure shows the clean target, the zero-filled / FBP / corrupted image, two samples, their
mean, its error and the samples' std (of the images as compared: magnitudes for MRI); the printout scores
the mean and the zero-filled image against the target (fastMRI's metrics) and says how well the std
tracks the error: their correlation over the pixels and the share of pixels whose error is within 2 std.
A smoke run: `--n-samples 2 --steps 3`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import rsd_sci


def metric_view(m, images: torch.Tensor) -> np.ndarray:
    """(B, 1, H, W) images -> (B, H, W) as the evaluation compares them: magnitudes, CT's attenuation
    with air at 0 inside the scanned disc, cropped to the target's size (fastMRI sets)."""
    x = images[:, 0].detach().cpu()
    x = (x.abs() if x.is_complex() else x).numpy().astype(np.float32)
    x = m.metric_view(x, m.batch["offset"].cpu().numpy())
    h, w = m.batch["targets"].shape[-2:]
    top, left = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[:, top:top + h, left:left + w]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a run folder or teacher.safetensors")
    parser.add_argument("--data", help="a measurement set (default: the run's data)")
    parser.add_argument("--index", type=int, default=0, help="the test-split row to reconstruct")
    parser.add_argument("--n-samples", type=int, default=8, help="posterior samples")
    parser.add_argument("--steps", type=int, default=300, help="A-DPS noise levels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("uncertainty.png"), help="the figure")
    args = parser.parse_args(argv)
    if args.n_samples < 2:
        parser.error("--n-samples must be at least 2 (a std needs two samples)")

    teacher = rsd_sci.load_model(args.model, args.device, kind="teacher")
    data = args.data or Path(args.model) / "data"
    m = rsd_sci.read_measurements(data, "test", [args.index], args.device)
    samples = torch.stack([rsd_sci.reconstruct(m, "adps", teacher, steps=args.steps, seed=args.seed + k)[0]
                           for k in range(args.n_samples)])                   # (K, 1, 1, H, W)
    views = np.stack([metric_view(m, s)[0] for s in samples])                # (K, h, w)
    target = metric_view(m, m.batch["targets"])[0]
    linear = metric_view(m, rsd_sci.reconstruct(m, m.zero_filled)[0])[0]
    mean, std = views.mean(0), views.std(0, ddof=1)
    error = np.abs(mean - target)
    result = {"mean": rsd_sci.volume_metrics(target, mean),
              m.zero_filled: rsd_sci.volume_metrics(target, linear),
              "error_std_correlation": float(np.corrcoef(error.ravel(), std.ravel())[0, 1]),
              "within_2_std": float(np.mean(error <= 2 * std))}
    for name in ("mean", m.zero_filled):
        print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in result[name].items()))
    print(f"std against |error|: correlation {result['error_std_correlation']:.3f}, "
          f"{100 * result['within_2_std']:.0f} % of pixels within 2 std")
    save_figure(args.out, {"target": target, m.zero_filled: linear, "sample 1": views[0],
                           "sample 2": views[min(1, len(views) - 1)], f"mean of {len(views)}": mean},
                {"|mean − target|": error, "std": std})
    print(f"wrote {args.out}")
    return result


def save_figure(path: Path, images: dict, maps: dict) -> None:
    """One row: images on the target's grey scale, then the error and std maps on one shared scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(images) + len(maps), figsize=(2.2 * (len(images) + len(maps)), 2.5))
    lo, hi = float(images["target"].min()), float(images["target"].max())
    top = max(float(v.max()) for v in maps.values())
    for ax, (title, image) in zip(axes, [*images.items(), *maps.items()]):
        scale = dict(vmin=lo, vmax=hi, cmap="gray") if title in images else dict(vmin=0, vmax=top, cmap="magma")
        ax.imshow(image, **scale)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
