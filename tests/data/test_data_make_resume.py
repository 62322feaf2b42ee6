"""An interrupted `data make` (and `train`'s data build) continues where it stopped: the same command
again keeps the whole volumes written in OUT.partial and gives a set bitwise identical to an
uninterrupted build; another command starts over (issue 14)."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.support.cli_runner import cli
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file
from rsd_sci.data import partial_set
from rsd_sci.data.make import MakeSpec, make_measurement_set
from rsd_sci.errors import InputError

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


class Stop(BaseException):
    """An interrupt (as SIGTERM's `Terminated` and Ctrl-C's KeyboardInterrupt are: not an Exception)."""


@pytest.fixture(scope="module")
def knee(tmp_path_factory):
    """4 fastMRI-schema volumes of 3 slices, 4 coils: 3 train volumes and 1 test volume."""
    d = tmp_path_factory.mktemp("knee")
    for v in range(4):
        write_fastmri_file(d / f"file_knee_{v:03d}.h5", make_fastmri_kspace(3, 4, 64, 32, seed=v), recon_size=(32, 32))
    return d


def _spec(folder, **options) -> MakeSpec:
    return MakeSpec(modality="mri", source="fastmri", input=str(folder), center_fraction=0.16, **options)


def _stop_after(n: int):
    """A progress callback that interrupts the build after its n-th slice of this run."""
    calls = []

    def progress(done, total, where):
        calls.append(where)
        if len(calls) == n:
            raise Stop()
    return progress


def assert_same_set(a: Path, b: Path) -> None:
    """Every dataset and attribute of both splits bitwise equal, and the same card."""
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir()) == ["card.yaml", "test.h5",
                                                                                          "train.h5"]
    assert (a / "card.yaml").read_text() == (b / "card.yaml").read_text()
    for split in ("train.h5", "test.h5"):
        with h5py.File(a / split, "r") as f, h5py.File(b / split, "r") as g:
            assert dict(f.attrs) == dict(g.attrs) and sorted(f) == sorted(g)
            for key in f:
                x, y = f[key][:], g[key][:]
                assert x.dtype == y.dtype and x.shape == y.shape, key
                assert list(x) == list(y) if x.dtype == object else x.tobytes() == y.tobytes(), key


def test_an_interrupted_build_continues_to_the_same_set(knee, tmp_path):
    straight, out = tmp_path / "straight", tmp_path / "set"
    make_measurement_set(_spec(knee), straight)
    with pytest.raises(Stop):   # in the middle of the second volume
        make_measurement_set(_spec(knee), out, progress=_stop_after(5))
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["set.partial", "straight"]
    record = json.loads((tmp_path / "set.partial" / "progress.json").read_text())
    assert record["samples"] == {"train": 3, "test": 0} and (record["next_volume"], record["volumes"]) == (2, 4)
    assert partial_set.resume_note(out) == (f"the volumes written are kept in {out}.partial: run the same command "
                                            "again to continue from volume 2 of 4")
    where = []

    def stop_at_the_last_slice(done, total, w):
        where.append((done, total, w))
        if done == total:
            raise Stop()

    with pytest.raises(Stop):   # again, after its last slice
        make_measurement_set(_spec(knee), out, progress=stop_at_the_last_slice)
    assert where[:2] == [(3, 12, "continuing from volume 2 of 4"), (4, 12, "train, volume 2 of 4")]
    assert json.loads((tmp_path / "set.partial" / "progress.json").read_text())["samples"] == {"train": 9, "test": 3}
    assert partial_set.resume_note(out).endswith("run the same command again to finish")
    where.clear()
    make_measurement_set(_spec(knee), out, progress=lambda *a: where.append(a))
    assert where == []
    assert_same_set(straight, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set", "straight"]


def test_a_killed_build_continues_from_its_last_record(knee, tmp_path, monkeypatch):
    """A kill -9 records nothing on its way out: the record of the last volume end counts, and the
    slices written after it are cut off."""
    monkeypatch.setattr(partial_set, "RECORD_EVERY_S", 0.0)
    monkeypatch.setattr(partial_set.PartialSet, "keep", lambda self: True)
    with pytest.raises(Stop):
        make_measurement_set(_spec(knee), tmp_path / "set", progress=_stop_after(8))
    with h5py.File(tmp_path / "set.partial" / "train.h5", "r") as f:
        assert f["measurements"].shape[0] == 8   # 2 slices of the third volume beyond the record
    assert json.loads((tmp_path / "set.partial" / "progress.json").read_text())["samples"] == {"train": 6, "test": 0}
    monkeypatch.undo()
    make_measurement_set(_spec(knee), tmp_path / "set")
    make_measurement_set(_spec(knee), tmp_path / "straight")
    assert_same_set(tmp_path / "straight", tmp_path / "set")


def test_another_command_starts_over_and_says_so(knee, tmp_path, caplog):
    with pytest.raises(Stop):
        make_measurement_set(_spec(knee, accel=4.0), tmp_path / "set", progress=_stop_after(4))
    caplog.set_level(logging.WARNING)
    make_measurement_set(_spec(knee, accel=6.0), tmp_path / "set")
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path / 'set.partial'}: made by another command (other options or input files); starting over"]
    make_measurement_set(_spec(knee, accel=6.0), tmp_path / "straight")
    assert_same_set(tmp_path / "straight", tmp_path / "set")


def test_changed_input_files_start_over(knee, tmp_path, caplog):
    folder = tmp_path / "knee"
    folder.mkdir()
    for p in knee.iterdir():
        (folder / p.name).write_bytes(p.read_bytes())
    with pytest.raises(Stop):
        make_measurement_set(_spec(folder), tmp_path / "set", progress=_stop_after(4))
    (folder / "file_knee_003.h5").unlink()
    caplog.set_level(logging.WARNING)
    make_measurement_set(_spec(folder), tmp_path / "set")
    assert "starting over" in caplog.text


def test_an_error_leaves_nothing_and_an_early_interrupt_too(tmp_path):
    make_spec = MakeSpec(modality="mri", size=32, n_train=3, n_test=1, center_fraction=0.2)

    def fail(done, total, where):
        raise ValueError("bad slice")

    with pytest.raises(ValueError):
        make_measurement_set(make_spec, tmp_path / "set", progress=fail)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Stop):   # before the first volume ends: nothing to keep
        with partial_set.building(tmp_path / "set", "k", {"train": [1], "test": [2]}):
            raise Stop()
    assert list(tmp_path.iterdir()) == [] and partial_set.resume_note(tmp_path / "set") is None


def test_a_second_process_on_the_same_set_is_refused(tmp_path):
    folder = tmp_path / "set.partial"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "now"}))
    with pytest.raises(InputError, match="is in use by another run"):
        make_measurement_set(MakeSpec(size=32, n_train=2, n_test=1, center_fraction=0.2), tmp_path / "set")
    assert sorted(p.name for p in folder.iterdir()) == [".lock"]


PHANTOMS = ["--size", "32", "--n-train", "4", "--n-test", "1", "--center-fraction", "0.2"]


@pytest.mark.parametrize("stop, code, name", [("sigterm", 128 + signal.SIGTERM, "SIGTERM"),
                                              ("ctrl-c", 128 + signal.SIGINT, "SIGINT")])
def test_data_make_stopped_says_how_to_continue(tmp_path, monkeypatch, stop, code, name):
    from cli import errors
    from rsd_sci.data import make

    slices = []
    real = make._slice_of_set

    def third_slice_stops(*args):
        slices.append(args[2:4])
        if len(slices) == 3 and stop == "ctrl-c":
            raise KeyboardInterrupt
        if len(slices) == 3:   # a SIGTERM: the next progress update stops the command
            monkeypatch.setattr(errors, "_signal_received", signal.SIGTERM)
        return real(*args)

    monkeypatch.setattr(make, "_slice_of_set", third_slice_stops)
    r = cli("data", "make", "--out", tmp_path / "set", *PHANTOMS)
    next_volume = 4 if stop == "sigterm" else 3   # SIGTERM stops after the third slice, Ctrl-C in it
    assert r.exit_code == code and r.output.splitlines() == [
        f"rsd-sci: stopped by {name}; the volumes written are kept in {tmp_path / 'set.partial'}: run the same "
        f"command again to continue from volume {next_volume} of 5"], r.output
    monkeypatch.undo()
    slices.clear()
    monkeypatch.setattr(make, "_slice_of_set", lambda *args: slices.append(args[2:4]) or real(*args))
    r = cli("data", "make", "--out", tmp_path / "set", *PHANTOMS)
    assert r.exit_code == 0 and len(slices) == 5 - (next_volume - 1), r.output
    assert cli("data", "make", "--out", tmp_path / "straight", *PHANTOMS).exit_code == 0
    assert_same_set(tmp_path / "straight", tmp_path / "set")
    r = cli("data", "make", "--out", tmp_path / "set", *PHANTOMS)   # a complete set: refused as before
    assert r.exit_code == 2 and "exists (use --force" in r.output


def test_trains_data_build_continues_after_the_run_lock(tmp_path):
    """`train` builds RUN/data the same way: its partial folder survives the run lock's clean-up of
    dead processes' temporaries, and the next start continues it."""
    from rsd_sci.apps.resolve import prepare_data
    from rsd_sci.data.run_lock import RunLock

    run, options = tmp_path / "run", dict(size=32, n_train=4, n_test=1, center_fraction=0.2)
    with pytest.raises(Stop), RunLock(run):
        prepare_data(None, "mri", options, 0, run, _stop_after(2))
    with RunLock(run):
        assert (run / "data.partial" / "progress.json").is_file()
        assert prepare_data(None, "mri", options, 0, run) == run / "data"
    make_measurement_set(MakeSpec(modality="mri", **options), tmp_path / "straight")
    assert_same_set(tmp_path / "straight", run / "data")
    assert sorted(p.name for p in run.iterdir()) == ["data"]


@pytest.mark.slow
def test_data_make_killed_9_then_the_same_command_gives_the_same_set(knee, tmp_path):
    command = [sys.executable, "-m", "cli", "data", "make", "--source", "fastmri", "--input", str(knee),
               "--center-fraction", "0.16"]
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    p = subprocess.Popen([*command, "--out", str(tmp_path / "set")], cwd=ROOT, env=env, stderr=subprocess.PIPE)
    record = tmp_path / "set.partial" / "progress.json"
    while p.poll() is None and not record.exists():
        time.sleep(0.01)
    p.kill()
    p.wait()
    assert json.loads(record.read_text())["samples"]["train"] > 0
    assert subprocess.run([*command, "--out", str(tmp_path / "set")], cwd=ROOT, env=env).returncode == 0
    assert subprocess.run([*command, "--out", str(tmp_path / "straight")], cwd=ROOT, env=env).returncode == 0
    assert_same_set(tmp_path / "straight", tmp_path / "set")
    assert not [q for q in tmp_path.rglob("*") if ".tmp-" in q.name or q.name == ".lock"]
