"""The evaluation's view of images (`Measurement.metric_view`) and the generator's model selection (`BestSnapshot`)."""

import numpy as np
import torch

from rsd_sci.engine.best_snapshot import BestSnapshot
from rsd_sci.measurement import family_of
from rsd_sci.physics.ct import ParallelBeamCT, field_of_view


def test_ct_view_puts_air_at_zero_and_drops_what_is_not_scanned():
    ct = family_of({"family": "ct", "image_size": 16})
    assert np.all(ct.metric_view(-np.ones((2, 16, 16), np.float32), -1.0) == 0)   # air everywhere
    x = np.random.default_rng(0).random((2, 16, 16)).astype(np.float32)
    view, fov = ct.metric_view(x, [-1.0, -0.5]), field_of_view(16)
    np.testing.assert_allclose(view[0][fov], x[0][fov] + 1.0)
    np.testing.assert_allclose(view[1][fov], x[1][fov] + 0.5)
    assert np.all(view[:, ~fov] == 0)
    assert family_of({"family": "mri"}).metric_view(x, 0.3) is x


def test_field_of_view_is_where_fbp_reconstructs():
    op = ParallelBeamCT(32, 60)
    fbp = op.fbp(op.A(torch.ones(1, 1, 32, 32)))[0, 0].numpy()
    fov = field_of_view(32)
    assert np.all(fbp[~fov] == 0) and np.all(fbp[fov] > 0.5)


def test_best_snapshot_keeps_the_lowest_finite_value_and_resumes():
    net = torch.nn.Linear(2, 1)
    best = BestSnapshot(net)
    for step, value in ((1, 0.4), (2, float("nan")), (3, 0.1), (4, 0.3)):
        torch.nn.init.constant_(net.weight, float(step))
        best.offer(net, value, step)
    assert (best.step, best.value) == (3, 0.1) and torch.all(best.module.weight == 3)
    again = BestSnapshot(torch.nn.Linear(2, 1))
    again.load_state_dict(best.state_dict())
    assert (again.step, again.value) == (3, 0.1) and torch.all(again.module.weight == 3)
