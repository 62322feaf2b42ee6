"""Global batches: every sample once per epoch, independent of how processes split them; collation."""

import numpy as np
import torch

from rsd_sci.data.batches import collate, global_batch_indices


def test_each_epoch_is_a_permutation_and_steps_tile_it():
    n, b = 10, 4
    seen = np.concatenate([global_batch_indices(n, b, s, seed=3) for s in range(5)])  # 20 = 2 epochs
    assert sorted(seen[:10].tolist()) == list(range(10)) and sorted(seen[10:].tolist()) == list(range(10))
    assert not np.array_equal(seen[:10], seen[10:])  # a new permutation each epoch
    assert np.array_equal(global_batch_indices(n, b, 2, seed=3), seen[8:12])  # wraps across the epoch


def test_collate_layout():
    samples = [dict(measurements=np.ones((1, 4, 4), np.complex64) * i, masks=np.ones(4, bool), scale=2.0,
                    offset=0.0, sigma_n=0.1 * i, index=i + 7) for i in range(3)]
    batch = collate(samples)
    assert batch["y"].shape == (3, 1, 4, 4) and batch["y"].dtype == torch.complex64
    assert batch["masks"].dtype == torch.bool and batch["index"].tolist() == [7, 8, 9]
    assert torch.allclose(batch["sigma_n"], torch.tensor([0.0, 0.1, 0.2]))
