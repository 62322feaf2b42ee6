"""rsd_sci/data/batch_stream.py: the training batches read ahead by worker processes are `load_batch`'s, in
the steps' order, and a run trained with loader workers equals one without."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from cli.app import app
from rsd_sci.data.batch_stream import step_batches
from rsd_sci.data.batches import global_batch_indices, load_batch
from rsd_sci.data.measurement_set import MeasurementSet, MeasurementSetWriter

runner = CliRunner()


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    """An MRI-shaped split of 10 samples: y and maps (2, 6, 8) complex64, line masks (8,), targets."""
    path = tmp_path_factory.mktemp("set") / "train.h5"
    rng = np.random.default_rng(0)
    with MeasurementSetWriter(path, "mri", {"family": "mri"}, "train", seed=0) as w:
        for i in range(10):
            c = rng.standard_normal((2, 2, 2, 6, 8), dtype=np.float32)
            w.append(measurements=(c[0, 0] + 1j * c[1, 0]).astype(np.complex64), masks=rng.random(8) < 0.5,
                     centers=np.arange(8) == 4, coil_maps=(c[0, 1] + 1j * c[1, 1]).astype(np.complex64),
                     targets=rng.random((1, 6, 8), dtype=np.float32), scale=1.0 + i, offset=-i, sigma_n=0.1 * i,
                     source=f"v{i}", slice_index=i)
    return path


@pytest.mark.parametrize("workers", [0, 2])
def test_the_batches_are_load_batchs_in_the_steps_order(split, workers):
    ms = MeasurementSet(split)
    half = lambda indices: indices[:2]  # noqa: E731  (a shard: this process's first 2 of 4)
    got = list(step_batches(split, 4, 7, 1, 5, workers, torch.device("cpu"), half))
    assert len(got) == 4
    for step, batch in zip(range(1, 5), got):
        want = load_batch(ms, global_batch_indices(len(ms), 4, step, 7)[:2].tolist())
        assert batch.keys() == want.keys()
        for key in want:
            assert batch[key].dtype == want[key].dtype and torch.equal(batch[key], want[key]), key


def test_a_run_with_loader_workers_equals_one_without(tmp_path):
    data = tmp_path / "set"
    r = runner.invoke(app, ["data", "make", "--out", str(data), "--size", "32", "--n-train", "16", "--n-test", "4",
                            "--center-fraction", "0.2", "--coils", "2"])
    assert r.exit_code == 0, r.output
    for workers in (0, 2):
        r = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / f"w{workers}"), "--preset",
                                "tiny", "--batch", "4", "--steps", "3", "--distill-steps", "2", "--no-eval",
                                "--device", "cpu", "--loader-workers", str(workers)])
        assert r.exit_code == 0, r.output
    for name in ("teacher", "generator"):
        a, b = (load_file(tmp_path / f"w{w}" / f"{name}.safetensors") for w in (0, 2))
        for key in a:
            assert torch.equal(a[key], b[key]), (name, key)
