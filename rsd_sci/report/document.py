"""RUN/report.md and RUN/figures/*.png from what a run holds (`rsd-sci report`, the end of `train`).

Reads RUN/config.yaml, RUN/log.jsonl, RUN/eval/metrics.json (with RUN/samples/*.npy and
RUN/eval/reconstructions.h5, from `rsd_sci.apps.evaluate`); sections whose inputs are missing
(e.g. a run trained with --no-eval) say how to make them. `headline(metrics)` is the short summary
`train` prints.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rsd_sci.data.atomic import atomic_path
from rsd_sci.data.finite_json import read_finite_json
from rsd_sci.measurement import family_of

SETS = ("data", "teacher", "generator")   # RUN/samples/<set>.npy beside reference.npy (`rsd_sci.apps.evaluate`)
SET_NAMES = {"data": "corrupted data R(y)", "teacher": "teacher samples", "generator": "generator samples"}


def headline(metrics: dict) -> list[str]:
    """A few lines: the distribution distances of data, teacher and generator, and each method's NMSE."""
    lines = []
    dist = metrics.get("distribution")
    if dist:
        parts = ", ".join(f"{name} {dist[name]['patch_sliced_wasserstein']:.4f}" for name in SETS if name in dist)
        lines.append(f"patch sliced Wasserstein to clean held-out images (lower is closer): {parts}")
        if "generator" in dist and "teacher" in dist:
            g, t = dist["generator"]["patch_sliced_wasserstein"], dist["teacher"]["patch_sliced_wasserstein"]
            lines.append(f"the generator is {'closer to' if g < t else 'NOT closer to'} the clean images than the "
                         f"teacher ({g:.4f} vs {t:.4f})")
        spread = dist.get("reference", {}).get("spread")
        if spread and (dist.get("generator") or {}).get("spread") is not None:
            ratio = dist["generator"]["spread"] / spread
            lines.append(f"the generator's samples differ from one another {ratio:.2f}x as much as the clean images "
                         f"do (spread {dist['generator']['spread']:.4f} vs {spread:.4f}"
                         + ("; below 0.8x: collapsing towards fewer images)" if ratio < 0.8 else ")"))
    recon = metrics.get("reconstruction")
    if recon:
        parts = ", ".join(f"{m} {r['mean']['nmse']:.4f}" for m, r in recon.items())
        lines.append(f"NMSE on {metrics['slices']} held-out slices: {parts}")
        base = family_of(metrics["operator"]).zero_filled
        if base in recon and "generator" in recon:
            gain = recon["generator"]["mean"]["psnr"] - recon[base]["mean"]["psnr"]
            lines.append(f"the generator prior is {gain:+.2f} dB PSNR over {base}")
    return lines


def _fmt(mean: float, std: float, digits: int) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _distribution_section(dist: dict | None, fig: str | None) -> list[str]:
    out = ["## Samples against clean held-out images", ""]
    if fig:
        out += [f"![samples]({fig})", ""]
    if not dist:
        return out + ["The test set holds no clean targets: no distances.", ""]
    out += ["Distances to the clean held-out images (never used in training; lower is closer). The patch sliced "
            "Wasserstein distance compares the distributions of mean-centred 8×8 patches at 3 scales; the power-"
            "spectrum distance compares radially averaged power spectra (log scale). The spread is the per-pixel "
            "standard deviation across a set's images: how much they differ from one another (a generator that "
            "collapses towards one image has a spread far below the clean images')."
            + (f" The clean held-out images' spread: {dist['reference']['spread']:.4f}." if "reference" in dist else ""),
            "", "| image set | n | patch sliced Wasserstein | power-spectrum distance | spread |", "|---|---|---|---|---|"]
    for name in SETS:
        if name in dist:
            d = dist[name]
            spread = "" if d.get("spread") is None else f"{d['spread']:.4f}"
            out.append(f"| {SET_NAMES[name]} | {d['n']} | {d['patch_sliced_wasserstein']:.4f} | "
                       f"{d['power_spectrum_distance']:.4f} | {spread} |")
    return out + ["", "![distances](figures/distances.png)", ""]


def _reconstruction_section(metrics: dict) -> list[str]:
    recon, S = metrics.get("reconstruction"), metrics["slices"]
    out = ["## Reconstructions of held-out measurements", ""]
    if recon is None:
        out += [f"{S} held-out slices reconstructed (no clean targets in the test set: no metrics).", ""]
    else:
        adps_k = recon.get("adps", {}).get("n_samples")
        note = family_of(metrics["operator"]).metric_note
        out += [f"{S} held-out slices, fastMRI semantics (magnitude, data range = the target volume's maximum, "
                "SSIM 7×7), mean ± std over volumes (each phantom slice is its own volume). "
                + note
                + (f"A-DPS: the mean of {adps_k} posterior samples, {recon['adps'].get('steps')} noise levels each. "
                   if adps_k else "")
                + ("The generator prior optimises the generator's input for data consistency (one start, "
                   f"{recon['generator'].get('steps')} iterations). " if "generator" in recon else ""), "",
                "| method | NMSE | PSNR (dB) | SSIM | s / slice |", "|---|---|---|---|---|"]
        for m, r in recon.items():
            mean, std = r["mean"], r["std"]
            out.append(f"| {m} | {_fmt(mean['nmse'], std['nmse'], 4)} | {_fmt(mean['psnr'], std['psnr'], 2)} | "
                       f"{_fmt(mean['ssim'], std['ssim'], 3)} | {r['seconds_per_slice']:.3g} |")
        out += ["", "![metrics](figures/metrics.png)", ""]
    return out + ["![reconstructions](figures/reconstructions.png)", "",
                  "Columns: the image, its absolute error to the target and, for A-DPS, the pixel-wise standard "
                  "deviation of its posterior samples (both ×4 the image's grey window).", ""]


def _sampler_titles(metrics: dict) -> dict:
    """The teacher row's title with the sampler the evaluation used (metrics["teacher_sampler"])."""
    sampler = metrics.get("teacher_sampler")
    if not sampler:
        return {}
    from rsd_sci.diffusion.teacher_sampling import stop_description

    end = stop_description(float(sampler.get("stop_sigma") or 0.0))
    return {"teacher": f"teacher samples ({sampler['steps']}-level sampler, {end})"}


def write_report(run_dir: str | Path) -> Path:
    """Write RUN/figures/*.png and RUN/report.md; returns the report's path."""
    import yaml

    from rsd_sci.engine.runlog import read_log
    from rsd_sci.report import figures

    run_dir = Path(run_dir)
    fig_dir = run_dir / "figures"
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text()) if (run_dir / "config.yaml").is_file() else {}
    metrics_path = run_dir / "eval" / "metrics.json"
    metrics = read_finite_json(metrics_path) if metrics_path.is_file() else None
    records = read_log(run_dir / "log.jsonl") if (run_dir / "log.jsonl").is_file() else []
    selected = ((metrics or {}).get("models", {}).get("generator") or {}).get("selected_step")

    out = [f"# rsd-sci run report: `{run_dir.name}`", ""]
    if cfg:
        out += [f"Modality **{cfg.get('modality')}**, preset **{cfg.get('preset')}**, {cfg.get('steps')} teacher steps, "
                f"{cfg.get('distill_steps')} distillation iterations, batch {cfg.get('batch')}, seed {cfg.get('seed')}, "
                f"data: {cfg.get('data') or 'the embedded phantoms'}."]
    if metrics:
        out += [f"Operator: {family_of(metrics['operator']).describe()}."]
    out += [""]
    if metrics:
        out += ["## Headline", ""] + [f"- {line}" for line in headline(metrics)] + [""]
        sample_fig = None
        sets = {n: np.load(run_dir / "samples" / f"{n}.npy") for n in ("reference", *SETS)
                if (run_dir / "samples" / f"{n}.npy").is_file()}
        if sets:
            figures.samples_figure(sets, fig_dir / "samples.png", titles=_sampler_titles(metrics))
            sample_fig = "figures/samples.png"
        if metrics.get("distribution"):
            figures.distance_bars({n: d for n, d in metrics["distribution"].items() if n in SETS},
                                  fig_dir / "distances.png")
        out += _distribution_section(metrics.get("distribution"), sample_fig)
        targets, recons = _read_reconstructions(run_dir / "eval" / "reconstructions.h5")
        recons = {m: recons[m] for m in metrics["seconds_per_slice"] if m in recons}   # the evaluation's order
        figures.reconstruction_figure(targets, recons, fig_dir / "reconstructions.png")
        if metrics.get("reconstruction"):
            figures.metric_bars(metrics["reconstruction"], fig_dir / "metrics.png")
        out += _reconstruction_section(metrics)
    else:
        out += ["No evaluation yet (the run was trained with --no-eval, or is not finished): "
                f"`rsd-sci report {run_dir}` evaluates it first.", ""]
    if records:
        figures.training_curves(records, fig_dir / "training.png", selected)
        out += ["## Training", "", "![training curves](figures/training.png)", "",
                "Teacher: its loss and the held-out measurement-domain loss (no clean data needed). Distillation: the "
                "fake-score loss and the measurement spectrum distance between the generator's synthetic "
                "measurements and real ones (their mean power per measured k-space column or detector frequency; "
                "no clean data needed); the exported generator is the EMA at the lowest value" + (f" (iteration {selected}, the star)." if selected else "."), ""]
    path = run_dir / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(out))
    return path


def _read_reconstructions(path: Path) -> tuple[np.ndarray | None, dict]:
    import h5py

    with h5py.File(path, "r") as f:
        targets = f["targets"][()] if "targets" in f else None
        recons = {m: {"mean": f[m]["mean"][()], "std": f[m]["std"][()] if "std" in f[m] else None}
                  for m in f if isinstance(f[m], h5py.Group)}
    return targets, recons
