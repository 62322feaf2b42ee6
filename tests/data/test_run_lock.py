"""One run per folder: a second `train` on a folder in use is refused in one line; a dead holder's lock is
broken; the lock goes with the run."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.support.cli_runner import cli
from rsd_sci.data.run_lock import LOCK_NAME, RunLock
from rsd_sci.errors import InputError

SMALL = ["--modality", "mri", "--size", "32", "--n-train", "8", "--n-test", "2", "--batch", "4",
         "--center-fraction", "0.2", "--steps", "2", "--distill-steps", "1", "--no-eval"]


def _dead_pid() -> int:
    """The PID of a process that has exited."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_live_holder_refuses_and_the_lock_goes_on_exit(tmp_path):
    with RunLock(tmp_path):
        holder = json.loads((tmp_path / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(InputError, match=f"in use by another run \\(process {os.getpid()}"):
            RunLock(tmp_path).__enter__()
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(RuntimeError), RunLock(tmp_path):   # released after an exception too
        raise RuntimeError("stop")
    assert not (tmp_path / LOCK_NAME).exists()


def test_a_dead_holders_lock_is_broken_with_a_warning(tmp_path, caplog):
    pid = _dead_pid()
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "then"}))
    with caplog.at_level(logging.WARNING), RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"process {pid}" in caplog.text and "no longer running" in caplog.text


def test_an_empty_lock_left_by_a_kill_is_broken_with_a_warning(tmp_path, caplog):
    (tmp_path / LOCK_NAME).write_text("")   # a process killed between creating the lock and writing it
    with caplog.at_level(logging.WARNING), RunLock(tmp_path):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "empty lock" in caplog.text
    assert sorted(p.name for p in tmp_path.iterdir()) == []   # no temporary left beside it


def test_a_holder_on_another_host_or_an_unreadable_lock_is_refused(tmp_path):
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": 1, "host": "elsewhere", "started": "then"}))
    with pytest.raises(InputError, match="elsewhere"):
        RunLock(tmp_path).__enter__()
    (tmp_path / LOCK_NAME).write_text("{not json")
    with pytest.raises(InputError, match="not a readable run lock"):
        RunLock(tmp_path).__enter__()


def test_two_trains_on_one_folder_give_one_refusal(tmp_path):
    """A running `train` (a subprocess) holds the folder: a second one is refused in one line, exit 2,
    and the first finishes."""
    run = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "cli", "train", "--out", str(run), *SMALL],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 120
    while not (run / LOCK_NAME).exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert (run / LOCK_NAME).exists(), first.communicate()[0]
    second = cli("train", "--out", run, *SMALL)
    out, _ = first.communicate(timeout=600)
    assert second.exit_code == 2 and "in use by another run" in second.output, second.output
    assert len(second.output.strip().splitlines()) == 1 and "Traceback" not in second.output
    assert first.returncode == 0, out
    assert not (run / LOCK_NAME).exists() and (run / "generator.safetensors").is_file()
