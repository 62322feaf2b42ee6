"""Teacher sampling for every family: the Ambient sampler for masked/row teachers, Heun (truncated at
σ_n for Tweedie teachers) for data-space ones; shapes, finiteness and truncation."""

import pytest
import torch
from typer.testing import CliRunner

from cli.app import app
from rsd_sci.data.batches import load_batch
from rsd_sci.data.measurement_set import open_measurement_set
from rsd_sci.diffusion.model import build_model
from rsd_sci.presets import NETWORK_KEYS, PRESETS
from rsd_sci.diffusion.teacher_sampling import sample_teacher

CASES = {
    "mri": (["--modality", "mri", "--center-fraction", "0.2"], "ambient", (2, 2, 32, 32)),
    "ct": (["--modality", "ct", "--views", "30"], "ambient", (2, 1, 32, 32)),
    "inpaint": (["--modality", "image", "--corruption", "inpaint"], "ambient", (2, 1, 32, 32)),
    "noise": (["--modality", "image", "--corruption", "noise"], "tweedie", (2, 1, 32, 32)),
    "downsample": (["--modality", "image", "--corruption", "downsample"], "plain", (2, 1, 16, 16)),
}


def fresh_teacher(tmp_path, *make_args):
    """(an untrained tiny teacher, the test split) of a 2 + 2 slice, 32×32 set made by `data make`."""
    r = CliRunner().invoke(app, ["data", "make", "--out", str(tmp_path / "set"), "--size", "32", "--n-train", "2",
                                 "--n-test", "2", *make_args])
    assert r.exit_code == 0, r.output
    _, test_set = open_measurement_set(tmp_path / "set")
    torch.manual_seed(0)
    network = {k: PRESETS["tiny"][k] for k in NETWORK_KEYS}
    return build_model(test_set.info.operator, network, float(test_set.column("sigma_n").max())), test_set


@pytest.mark.parametrize("name", CASES)
def test_sample_each_family(tmp_path, name):
    args, member, shape = CASES[name]
    teacher, test_set = fresh_teacher(tmp_path, *args)
    assert teacher.member == member
    calls = []
    m = teacher.family.measure(load_batch(test_set, [0, 1]))
    x = sample_teacher(teacher, m, steps=4, progress=lambda i, n: calls.append(i))
    assert x.shape == shape and torch.isfinite(x).all()
    if member in ("tweedie", "ambient"):  # stops once σ < σ_n = 0.2 (Tweedie) or σ < 0.1 (the Ambient
        assert len(calls) < 4             # default): before the last of 4 steps
    else:
        assert calls == [1, 2, 3, 4]


def test_stop_sigma_ends_at_the_last_level_above(tmp_path):
    """stop_sigma ends the Ambient sampler early: fewer steps, and the x0 of the last level >= it."""
    teacher, test_set = fresh_teacher(tmp_path, "--modality", "ct", "--views", "30")
    calls = []
    x = sample_teacher(teacher, teacher.family.measure(load_batch(test_set, [0, 1])), steps=6, stop_sigma=0.5,
                       progress=lambda i, n: calls.append(i))
    assert torch.isfinite(x).all() and len(calls) < 6


def test_mri_ambient_teacher_stops_at_0_1_by_default(tmp_path):
    """No stop named: an MRI Ambient teacher returns x0 at the last level >= 0.1 (as stop_sigma=0.1), and
    stop_sigma=0 integrates all the way to sigma_min (a different image, every step taken)."""
    from rsd_sci.diffusion.teacher_sampling import default_stop_sigma

    teacher, test_set = fresh_teacher(tmp_path, "--modality", "mri", "--center-fraction", "0.2")
    assert default_stop_sigma(teacher) == teacher.family.default_stop_sigma == 0.1
    ops = teacher.family.measure(load_batch(test_set, [0, 1]))
    default = sample_teacher(teacher, ops, steps=8)
    assert torch.equal(default, sample_teacher(teacher, ops, steps=8, stop_sigma=0.1))
    calls = []
    full = sample_teacher(teacher, ops, steps=8, stop_sigma=0, progress=lambda i, n: calls.append(i))
    assert calls == list(range(1, 9)) and not torch.allclose(full, default)
