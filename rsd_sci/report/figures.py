"""The report's PNG figures (matplotlib, Agg backend), each from arrays the evaluation wrote.

    samples_figure(sets, path)                 rows: clean reference, corrupted data R(y), teacher, generator
    reconstruction_figure(targets, recons, path)   per slice: image, |error|, std (A-DPS) for every method
    metric_bars(metrics, path)                 NMSE, PSNR, SSIM (mean ± std over volumes), seconds per slice
    distance_bars(distances, path)             patch sliced Wasserstein and power-spectrum distance per set
    training_curves(records, path)             teacher loss / held-out loss; distillation losses / held-out SW

Images share one grey window per figure: [0, the 99.5th percentile of the clean reference] (of the
data when there is no reference), so brightness differences between rows are real.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from rsd_sci.data.atomic import atomic_path  # noqa: E402

SET_TITLES = {
    "reference": "clean held-out images (reference only, never seen in training)",
    "data": "corrupted training data R(y)",
    "teacher": "teacher samples (18-level sampler)",
    "generator": "generator samples (one step, 1 network call)",
}


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def grey_window(images: np.ndarray) -> tuple[float, float]:
    return 0.0, float(np.quantile(images, 0.995)) or 1.0


def samples_figure(sets: dict[str, np.ndarray], path: Path, n: int = 8, titles: dict | None = None) -> Path:
    """Rows of `n` images from each set of SET_TITLES present in `sets` ((N, H, W) magnitudes); `titles`
    replaces some of the row titles."""
    titles = SET_TITLES | (titles or {})
    names = [k for k in SET_TITLES if k in sets]
    n = min(n, *(len(sets[k]) for k in names))
    lo, hi = grey_window(sets.get("reference", sets[names[0]]))
    fig, axes = plt.subplots(len(names), n, figsize=(1.3 * n, 1.5 * len(names)), squeeze=False)
    for row, name in enumerate(names):
        for i in range(n):
            axes[row, i].imshow(sets[name][i], cmap="gray", vmin=lo, vmax=hi)
            axes[row, i].axis("off")
        axes[row, 0].set_title(titles[name], loc="left", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.92, bottom=0.01, wspace=0.04, hspace=0.2)
    return _save(fig, path)


def reconstruction_figure(targets: np.ndarray | None, recons: dict[str, dict], path: Path, slices: int = 2) -> Path:
    """One row per method (the target first); per slice the columns image, |image − target| (×4 the grey
    window's scale) when there are targets, and the pixel-wise std of the A-DPS samples when a method has one."""
    methods = list(recons)
    first = recons[methods[0]]["mean"]
    slices = min(slices, len(first))
    rows = ([("target", {"mean": targets})] if targets is not None else []) + [(m, recons[m]) for m in methods]
    columns = ["image"] + (["|error| (×4)"] if targets is not None else []) + \
        (["std (×4)"] if any(r.get("std") is not None for r in recons.values()) else [])
    k = len(columns)
    lo, hi = grey_window(targets[:slices] if targets is not None else first[:slices])
    fig, axes = plt.subplots(len(rows), k * slices, figsize=(1.5 * k * slices, 1.55 * len(rows)), squeeze=False)
    for r, (name, rec) in enumerate(rows):
        for s in range(slices):
            image, std = rec["mean"][s], rec.get("std")
            panels = {"image": (image, "gray", lo, hi)}
            if targets is not None and name != "target":
                panels["|error| (×4)"] = (np.abs(image - targets[s]), "magma", 0.0, hi / 4)
            if std is not None:
                panels["std (×4)"] = (std[s], "viridis", 0.0, hi / 4)
            for c, column in enumerate(columns):
                ax = axes[r, k * s + c]
                ax.axis("off")
                if column in panels:
                    data, cmap, vmin, vmax = panels[column]
                    ax.imshow(data, cmap=cmap, vmin=vmin, vmax=vmax)
        axes[r, 0].text(-0.06, 0.5, name, rotation=90, ha="right", va="center", fontsize=9,
                        transform=axes[r, 0].transAxes)
    for s in range(slices):
        for c, label in enumerate(columns):
            axes[0, k * s + c].set_title(f"slice {s}: {label}", fontsize=8)
    fig.subplots_adjust(left=0.04, right=0.99, top=0.93, bottom=0.01, wspace=0.04, hspace=0.12)
    return _save(fig, path)


def metric_bars(metrics: dict[str, dict], path: Path) -> Path:
    """Bars of NMSE, PSNR, SSIM (mean, std as error bars) and seconds per slice (log axis) per method."""
    methods = list(metrics)
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2))
    x = np.arange(len(methods))
    for ax, name, label in zip(axes, ("nmse", "psnr", "ssim"), ("NMSE (lower is better)", "PSNR dB", "SSIM")):
        ax.bar(x, [metrics[m]["mean"][name] for m in methods], yerr=[metrics[m]["std"][name] for m in methods],
               color="tab:blue", capsize=3)
        ax.set_title(label, fontsize=10)
    axes[3].bar(x, [metrics[m]["seconds_per_slice"] for m in methods], color="tab:gray")
    axes[3].set_yscale("log")
    axes[3].set_title("seconds per slice", fontsize=10)
    for ax in axes:
        ax.set_xticks(x, methods, rotation=30, ha="right", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def distance_bars(distances: dict[str, dict], path: Path) -> Path:
    """Patch sliced Wasserstein and power-spectrum distance to the clean reference, per image set."""
    names = list(distances)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for ax, key, label in zip(axes, ("patch_sliced_wasserstein", "power_spectrum_distance"),
                              ("patch sliced Wasserstein", "power-spectrum distance")):
        ax.bar(names, [distances[n][key] for n in names], color=["tab:gray", "tab:orange", "tab:green"][:len(names)])
        ax.set_title(f"{label} to clean (lower is closer)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def training_curves(records: list[dict], path: Path, selected_step: int | None = None) -> Path:
    """Per stage in the log: its loss and held-out signal against the step (the selected step marked)."""
    stages = [s for s in ("teacher", "distill") if any(r.get("stage") == s for r in records)]
    fig, axes = plt.subplots(1, max(1, len(stages)), figsize=(6 * max(1, len(stages)), 3.2), squeeze=False)
    signals = {"teacher": ("loss", "heldout", "held-out measurement loss"),
               "distill": ("fake_loss", "selection_signal", "selection signal (held-out SW × spectrum)^½")}
    for ax, stage in zip(axes[0], stages):
        loss_key, signal_key, signal_label = signals[stage]
        lines = _last_per_step([r for r in records if r.get("stage") == stage])
        steps = [r["step"] for r in lines if r.get(loss_key) is not None]
        ax.plot(steps, [r[loss_key] for r in lines if r.get(loss_key) is not None], color="tab:blue", lw=1)
        ax.set_xlabel(f"{stage} step")
        ax.set_ylabel(loss_key, color="tab:blue")
        held = [(r["step"], r[signal_key]) for r in lines if r.get(signal_key) is not None]
        if held:
            twin = ax.twinx()
            twin.plot(*zip(*held), "o-", color="tab:red", ms=4)
            twin.set_ylabel(signal_label, color="tab:red")
            if stage == "distill" and selected_step in dict(held):
                twin.plot([selected_step], [dict(held)[selected_step]], "k*", ms=12, label="exported")
                twin.legend(loc="upper right", fontsize=8)
        ax.set_title(stage, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _last_per_step(lines: list[dict]) -> list[dict]:
    """After a resume a step may be logged twice: keep its last line, in step order."""
    return sorted({r["step"]: r for r in lines}.values(), key=lambda r: r["step"])
