"""`rsd-sci evaluate`: fastMRI-style metrics of reconstructions, or distances between two image sets.

    rsd-sci evaluate --targets DIR --predictions DIR [--json FILE]      NMSE, PSNR, SSIM per volume
    rsd-sci evaluate --samples FILE --reference FILE [--features PATH]  patch SW, power spectrum, FID/KID
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from cli.errors import fail, guarded

FALLBACK_TARGET_KEY = "reconstruction_esc"  # fastMRI single-coil targets, when the rss key is absent
NO_FEATURES = ("FID/KID: not computed (pass --features PATH, a TorchScript feature extractor or the StyleGAN2-ADA "
               "Inception detector file; no weights are downloaded)")
FEATURE_INPUT = {"magnitude": "one-channel extractor, magnitudes as they are",
                 "inception": "StyleGAN2-ADA Inception detector, the published protocol: magnitudes as they are, "
                              "a centred square, 3 channels"}
SHOWN_NAMES = 3  # missing file names listed in an error
WRITTEN_BY = "rsd-sci evaluate"   # the "written_by" value of every --json file: how evaluate knows its own
MAX_OWN_JSON = 64 * 2**20         # bytes: a larger existing file is someone else's, and is not read


@guarded
def evaluate(
    targets: Optional[Path] = typer.Option(None, "--targets", help="Folder of fastMRI target files (*.h5)."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="Folder of reconstructions (*.h5), "
                                                                           "named as the targets."),
    key_target: str = typer.Option("reconstruction_rss", "--key-target",
                                   help="Target dataset (reconstruction_rss falls back to reconstruction_esc)."),
    key_prediction: str = typer.Option("reconstruction", "--key-prediction", help="Prediction dataset."),
    samples: Optional[Path] = typer.Option(None, "--samples", help="Image set: .npy, .h5 or .nii(.gz)."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="Reference image set, same formats."),
    features: Optional[Path] = typer.Option(None, "--features", help="TorchScript feature extractor for FID/KID: "
                                                  "one-channel, or the StyleGAN2-ADA Inception detector file."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the results to this JSON file."),
    device: str = typer.Option("auto", help="auto | cpu | cuda (image-set distances and features)."),
    seed: int = typer.Option(0, help="Seed of the patches and directions of the sliced Wasserstein distance."),
) -> None:
    """Score reconstructions against fastMRI targets, or compare a set of samples with a reference set."""
    if seed < 0:
        fail(f"--seed must be non-negative (got {seed})")
    paired = targets is not None or predictions is not None
    sets = samples is not None or reference is not None or features is not None
    if paired == sets:
        fail("give either --targets DIR and --predictions DIR, or --samples FILE and --reference FILE")
    if paired and (targets is None or predictions is None):
        fail("--targets and --predictions go together")
    if sets and (samples is None or reference is None):
        fail("--samples and --reference go together")
    if json_out is not None:   # before any work
        from rsd_sci.data.output_guard import check_outputs

        check_outputs([json_out], {"--targets": targets, "--predictions": predictions, "--samples": samples,
                                   "--reference": reference, "--features": features})
        _check_replaceable(json_out)
    if paired:
        result = _paired(targets, predictions, key_target, key_prediction)
    else:
        result = _distances(samples, reference, features, device, seed)
    if json_out is not None:
        _write_json(json_out, {"written_by": WRITTEN_BY} | result, paired)
        typer.echo(f"wrote {json_out}")


def _h5_names(folder: Path) -> dict[str, Path]:
    from rsd_sci.errors import InputError

    if not folder.is_dir():
        raise InputError(folder, "not a folder")
    files = {p.name: p for p in sorted(folder.glob("*.h5"))}
    if not files:
        raise InputError(folder, "no .h5 files")
    return files


def _unmatched(names: set[str], where: str) -> str:
    shown = ", ".join(sorted(names)[:SHOWN_NAMES]) + (", …" if len(names) > SHOWN_NAMES else "")
    return f"{len(names)} file(s) {where}: {shown}"


def _read_target(path: Path, key: str):
    from rsd_sci.data.fastmri import read_reconstruction
    from rsd_sci.data.hdf5_file import open_hdf5
    from rsd_sci.errors import InputError

    keys = (key, FALLBACK_TARGET_KEY) if key == "reconstruction_rss" else (key,)
    with open_hdf5(path) as f:
        found = next((k for k in keys if k in f), None)
    if found is None:
        raise InputError(path, f"no {' or '.join(repr(k) for k in keys)} dataset")
    return read_reconstruction(path, found)


def _paired(targets: Path, predictions: Path, key_target: str, key_prediction: str) -> dict:
    from cli.progress import progress_bar
    from rsd_sci.data.fastmri import read_reconstruction
    from rsd_sci.errors import InputError
    from rsd_sci.metrics.image import summarize, volume_metrics

    t_files, p_files = _h5_names(targets), _h5_names(predictions)
    missing, extra = set(t_files) - set(p_files), set(p_files) - set(t_files)
    if missing or extra:
        problems = ([_unmatched(missing, f"of {targets} have no prediction")] if missing else []) + \
                   ([_unmatched(extra, f"have no target in {targets}")] if extra else [])
        raise InputError(predictions, "; ".join(problems))
    per_volume = {}
    with progress_bar("Evaluating") as update:
        for i, name in enumerate(t_files):
            target = _read_target(t_files[name], key_target)
            prediction = read_reconstruction(p_files[name], key_prediction)
            try:
                per_volume[name] = volume_metrics(target, prediction)
            except ValueError as err:
                raise InputError(p_files[name], str(err)) from None
            update(i + 1, len(t_files))
    result = summarize(per_volume)
    _print_table(result)
    return result


def _print_table(result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("volume", "NMSE", "PSNR (dB)", "SSIM")
    for name, m in result["per_volume"].items():
        table.add_row(name, f"{m['nmse']:.4g}", f"{m['psnr']:.2f}", f"{m['ssim']:.4f}")
    mean, std = result["mean"], result["std"]
    table.add_row("mean ± std", f"{mean['nmse']:.4g} ± {std['nmse']:.2g}", f"{mean['psnr']:.2f} ± {std['psnr']:.2f}",
                  f"{mean['ssim']:.4f} ± {std['ssim']:.4f}", style="bold")
    Console().print(table)


def _distances(samples: Path, reference: Path, features: Optional[Path], device: str, seed: int) -> dict:
    import torch

    from rsd_sci.data.image_sets import read_image_set
    from rsd_sci.engine.distributed import resolve_device
    from rsd_sci.errors import InputError
    from rsd_sci.metrics.distribution import patch_sliced_wasserstein, power_spectrum_distance, sample_spread
    from rsd_sci.metrics.extractors import load_extractor
    from rsd_sci.metrics.features import feature_distances

    dev = resolve_device(device)
    extractor = None if features is None else load_extractor(features, dev)
    x, y = read_image_set(samples), read_image_set(reference)
    if x.shape[1:] != y.shape[1:]:
        raise InputError(reference, f"images are (C, H, W) = {y.shape[1:]}, but {samples} holds {x.shape[1:]}")
    tx, ty = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    try:
        result = {"patch_sliced_wasserstein": patch_sliced_wasserstein(tx, ty, seed=seed),
                  "power_spectrum_distance": power_spectrum_distance(tx, ty)}
    except ValueError as err:
        raise InputError(samples, str(err)) from None
    result |= {"n_samples": len(x), "n_reference": len(y)}
    if len(x) > 1 and len(y) > 1:
        result |= {"spread_samples": sample_spread(tx), "spread_reference": sample_spread(ty)}
    if features is not None:
        result |= feature_distances(features, extractor, x, y, dev)
    sw = result["patch_sliced_wasserstein"]
    typer.echo(f"samples {samples} (n = {len(x)}) vs reference {reference} (n = {len(y)})")
    typer.echo(f"patch sliced Wasserstein: {sw['mean']:.5g} (scales {', '.join(f'{d:.4g}' for d in sw['scales'])})")
    typer.echo(f"power-spectrum distance: {result['power_spectrum_distance']:.5g}")
    if "spread_samples" in result:
        typer.echo(f"spread (per-pixel std across the set): samples {result['spread_samples']:.4g}, "
                   f"reference {result['spread_reference']:.4g}")
    if features is None:
        typer.echo(NO_FEATURES)
    else:
        fed = FEATURE_INPUT[result["feature_interface"]]
        typer.echo(f"FID: {result['fid']:.5g}   KID: {result['kid']:.5g}   ({fed})")
    return result


def _check_replaceable(path: Path) -> None:
    """InputError unless `path` is new, empty (nothing to lose: e.g. made by mktemp) or an earlier output
    of `evaluate --json`: a JSON object whose "written_by" is WRITTEN_BY (the key every such file holds)."""
    from rsd_sci.errors import InputError

    if not path.exists() or (path.is_file() and path.stat().st_size == 0):
        return
    try:   # a folder, FIFO or device, or a file too large to be ours, is not read
        small = path.is_file() and path.stat().st_size <= MAX_OWN_JSON
        ours = small and json.loads(path.read_bytes()).get("written_by") == WRITTEN_BY
    except (OSError, ValueError, RecursionError, AttributeError):   # unreadable, not JSON, not an object
        ours = False
    if not ours:
        raise InputError(path, "exists and is not an earlier `rsd-sci evaluate --json` output; choose "
                               "another file name")


def _write_json(path: Path, result: dict, paired: bool) -> None:
    """The results as JSON; metrics that are not finite as null, with a note (`rsd_sci.data.finite_json`)."""
    from rsd_sci.data.atomic import atomic_path
    from rsd_sci.data.finite_json import finite_json
    from rsd_sci.errors import InputError
    from rsd_sci.metrics.image import NON_FINITE_CAUSE

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_text(finite_json(result, NON_FINITE_CAUSE if paired else ""))
    except OSError as err:
        raise InputError(path, f"cannot write ({err.strerror or err})") from None
