"""Operator cases: parallel-beam CT (full, sparse-view, limited-angle and per-sample view masks).

Small images (32×32, 180 angles) keep the shared checks fast; the system matrices are cached per
(size, angles, dtype), so the cases share two builds.
"""

import torch

from tests.support.operator_checks import OperatorCase
from rsd_sci.physics.ct import ParallelBeamCT, view_mask

N, ANGLES = 32, 180


def _per_sample_masks() -> torch.Tensor:
    return torch.stack([torch.from_numpy(view_mask(ANGLES, 30, "sparse", offset=1)),
                        torch.from_numpy(view_mask(ANGLES, 45, "limited", offset=100))])


CASES = [
    OperatorCase("ct_full_180", lambda dt: ParallelBeamCT(N, ANGLES), (2, 1, N, N)),
    OperatorCase("ct_sparse_60", lambda dt: ParallelBeamCT(N, ANGLES, torch.from_numpy(view_mask(ANGLES, 60))),
                 (2, 1, N, N)),
    OperatorCase("ct_limited_90",
                 lambda dt: ParallelBeamCT(N, ANGLES, torch.from_numpy(view_mask(ANGLES, 90, "limited", 30))),
                 (2, 1, N, N)),
    OperatorCase("ct_per_sample_masks", lambda dt: ParallelBeamCT(N, ANGLES, _per_sample_masks()), (2, 1, N, N)),
    OperatorCase("ct_odd_size_45", lambda dt: ParallelBeamCT(N - 1, 45), (1, 1, N - 1, N - 1)),
]
