"""Make docs/figures/data.png: embedded phantoms (clean) and what a model trains on (corrupted).

    python scripts/figure_data.py [--out docs/figures/data.png]
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from rsd_sci.data import phantoms  # noqa: E402
from rsd_sci.data.simulate_ct import ct_scale  # noqa: E402
from rsd_sci.physics.base import Corruption  # noqa: E402
from rsd_sci.physics.ct import ParallelBeamCT, view_mask  # noqa: E402
from rsd_sci.physics.inpaint import PixelMask, bernoulli_mask  # noqa: E402
from rsd_sci.physics.masks import MaskSpec  # noqa: E402
from rsd_sci.physics.mri import MRIOperator  # noqa: E402
from rsd_sci.physics.noise import GaussianNoise  # noqa: E402
from rsd_sci.physics.radon_matrix import circle_mask  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="docs/figures/data.png")
    parser.add_argument("--size", type=int, default=128)
    args = parser.parse_args()
    n, g = args.size, torch.Generator().manual_seed(0)

    mri = torch.from_numpy(phantoms.mri_phantoms(1, n, seed=0))[:, None]
    line = MaskSpec("random", 4, 0.08).make((n, n), seed=0)
    zero_filled = MRIOperator(torch.from_numpy(line.mask)[None, None, None].float()).R(
        Corruption(MRIOperator(torch.from_numpy(line.mask)[None, None, None].float()), GaussianNoise(0.002))(mri, g))

    ct = torch.from_numpy(ct_scale().apply(phantoms.ct_phantoms(1, n, seed=0)))[:, None]
    op = ParallelBeamCT(n, 180, view_mask=torch.from_numpy(view_mask(180, 20)))
    fbp = op.R(op.A(ct))
    fbp[:, :, ~torch.from_numpy(circle_mask(n))] = -1.0  # outside the scanned circle nothing is measured; show it as air

    img = torch.from_numpy(phantoms.image_phantoms(1, n, seed=3)) * 2 - 1
    masked = PixelMask(bernoulli_mask(img.shape, 0.6, g)).A(img)

    panels = [(mri.abs(), "MRI phantom |x|"), (ct, "CT phantom (normalised μ)"), (img, "image phantom"),
              (zero_filled.abs(), "zero-filled, 4× lines"), (fbp, "FBP, 20 of 180 views"), (masked, "60 % pixels missing")]
    fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
    for ax, (t, title) in zip(axes.ravel(), panels):
        a = t[0, 0].numpy()
        ax.imshow(a, cmap="gray", vmin=np.percentile(a, 0.5), vmax=np.percentile(a, 99.5))
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle("Clean (top, for evaluation only) and what rsd-sci trains on (bottom)", fontsize=11)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
