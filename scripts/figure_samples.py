"""A PNG grid of what a run learned: clean held-out images (for reference only: never used in training),
the corrupted training images (the fixed reconstruction R(y), e.g. zero-filled MRI or sparse-view FBP),
teacher samples (the default sampler of `rsd-sci sample`: the Ambient sampler, stopped at σ = 0.1 for
MRI/CT teachers, or Heun, truncated at σ_n for Tweedie teachers) and, when the run has a generator, its
one-step samples. Magnitudes for complex MRI; one grey window for all rows.

    python scripts/figure_samples.py RUN --out docs/figures/samples_mri.png [--n 8 --steps 18 --stop-sigma 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from rsd_sci.data.batches import load_batch  # noqa: E402
from rsd_sci.data.measurement_set import open_measurement_set  # noqa: E402
from rsd_sci.diffusion.teacher_sampling import sample_teacher, stop_description  # noqa: E402
from rsd_sci.distill.distiller import generate  # noqa: E402
from rsd_sci.distill.draws import KeyedDraws  # noqa: E402
from rsd_sci.engine.model import load_model  # noqa: E402


def display(t: torch.Tensor, family) -> torch.Tensor:
    """(B, channels, H, W) network channels -> (B, H, W) real images for display."""
    image = family.to_image(t)
    return (image.abs() if image.is_complex() else image)[:, 0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--steps", type=int, default=18)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stop-sigma", type=float, default=None,
                        help="add a row: the same samples stopped at this sigma (0: integrated to sigma_min)")
    args = parser.parse_args()
    teacher = load_model(args.run / "teacher.safetensors", kind="teacher")
    family, meta = teacher.family, teacher.meta
    train_set, test_set = open_measurement_set(args.run / "data")
    corrupted = display(family.measure(load_batch(train_set, range(args.n))).network_input(), family)
    ops = load_batch(test_set, range(args.n))
    m = family.measure(ops)
    rows = [corrupted, display(sample_teacher(teacher, m, seed=args.seed, steps=args.steps), family)]
    titles = ["corrupted training data R(y)",
              f"teacher samples ({meta['member']} loss, {meta['config']['steps']} steps, preset "
              f"{meta['config']['preset']}, {args.steps}-level sampler, "
              f"{stop_description(family.default_stop_sigma)})"]
    if "targets" in ops:
        rows.insert(0, ops["targets"][:, 0].float())
        titles.insert(0, "clean held-out images (reference only, never seen in training)")
    if args.stop_sigma is not None:
        rows.append(display(sample_teacher(teacher, m, seed=args.seed, steps=args.steps,
                                           stop_sigma=args.stop_sigma), family))
        titles.append(f"the same samples, {stop_description(args.stop_sigma)}")
    if (args.run / "generator.safetensors").is_file():
        G = load_model(args.run / "generator.safetensors", kind="generator")
        g_meta = G.meta
        with torch.no_grad():
            x_g = generate(G.denoiser, m, KeyedDraws(m.index, args.seed, 0), g_meta["sigma_init"])
        rows.append(display(x_g, family))
        titles.append(f"generator samples (one step, 1 network call; {g_meta['config']['distill_steps']} "
                      "distillation iterations)")
    fig, axes = plt.subplots(len(rows), args.n, figsize=(1.3 * args.n, 1.5 * len(rows)))
    lo, hi = torch.quantile(corrupted.flatten(), 0.01).item(), torch.quantile(corrupted.flatten(), 0.995).item()
    for row, images in enumerate(rows):
        for i in range(args.n):
            axes[row, i].imshow(images[i].numpy(), cmap="gray", vmin=lo, vmax=hi)
            axes[row, i].axis("off")
        axes[row, 0].set_title(titles[row], loc="left", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, top=0.9, bottom=0.01, wspace=0.04, hspace=0.18)
    fig.savefig(args.out, dpi=100)


if __name__ == "__main__":
    main()
