"""Compare a model's samples with a reference set: patch sliced Wasserstein, power-spectrum distance,
spread, and FID/KID through your own feature extractor.

    python examples/compare_samples.py --model runs/mri-r4 -n 64
    python examples/compare_samples.py --model runs/mri-r4 --reference clean.npy --features extractor.pt

The reference is the first n clean test images of the run's measurement set (default; never seen in
training) or an image-set file (.npy, .h5, .nii.gz, as `rsd-sci evaluate --reference` reads it; in the
units of the model's data). Compared with it: the run's data (R(y) of n training measurements: the
zero-filled, FBP or corrupted images naive training would learn from), n one-step generator samples
and, when the run has a teacher, n teacher samples. Lower distances are closer; a spread far below the reference's is a
collapsed set. A smoke run: `-n 4 --teacher-steps 2`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import rsd_sci


def as_compared(images: torch.Tensor, family, offset: float, size: tuple[int, int]) -> torch.Tensor:
    """(N, 1, H, W) images as the evaluation compares them, (N, 1, h, w) float32: magnitudes, CT's
    attenuation with air at 0 inside the disc, centre-cropped to the reference's size (fastMRI sets)."""
    x = images[:, 0].detach().cpu()
    x = family.metric_view((x.abs() if x.is_complex() else x).numpy().astype(np.float32), offset)
    top, left = (x.shape[-2] - size[0]) // 2, (x.shape[-1] - size[1]) // 2
    return torch.from_numpy(np.ascontiguousarray(x[:, None, top:top + size[0], left:left + size[1]]))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a run folder")
    parser.add_argument("--reference", help="an image-set file (default: the run's clean test images)")
    parser.add_argument("-n", type=int, default=32, help="images per compared set")
    parser.add_argument("--teacher-steps", type=int, default=18, help="the teacher sampler's noise levels")
    parser.add_argument("--features", help="a TorchScript feature extractor for FID/KID")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)

    run = Path(args.model)
    generator = rsd_sci.load_model(run, args.device, kind="generator")
    family = generator.family
    test = rsd_sci.read_measurements(run / "data", "test", slice(args.n))
    offset = float(test.batch["offset"][0])   # one normalisation offset per set (CT: −1, else 0)
    if args.reference is None:
        reference = as_compared(test.batch["targets"], family, offset, test.batch["targets"].shape[-2:])
    else:
        reference = torch.from_numpy(rsd_sci.read_image_set(args.reference))
    size = tuple(reference.shape[-2:])
    train = rsd_sci.read_measurements(run / "data", "train", slice(args.n))
    sets = {"data": train.R(train.y),
            "generator": rsd_sci.sample(generator, args.n, seed=args.seed)}
    if (run / "teacher.safetensors").is_file():
        teacher = rsd_sci.load_model(run, args.device, kind="teacher")
        sets["teacher"] = rsd_sci.sample(teacher, args.n, steps=args.teacher_steps, seed=args.seed)
    results = {"reference": {"spread": rsd_sci.sample_spread(reference), "n": len(reference)}}
    print(f"reference: n = {len(reference)}, spread {results['reference']['spread']:.4g}")
    for name, images in sets.items():
        x = as_compared(images, family, offset, size)
        sw = rsd_sci.patch_sliced_wasserstein(x, reference, seed=args.seed)
        results[name] = {"patch_sliced_wasserstein": sw["mean"],
                         "power_spectrum_distance": rsd_sci.power_spectrum_distance(x, reference),
                         "spread": rsd_sci.sample_spread(x), "n": len(x)}
        if args.features:
            results[name] |= rsd_sci.fid_kid(x, reference, args.features, args.device)
        print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in results[name].items() if isinstance(v, float)))
    return results


if __name__ == "__main__":
    main()
