"""Outputs the machine refuses (issue 15, items 1 and 4), on real file systems rather than a patched
`shutil.disk_usage`: a genuinely read-only folder and a 1 MiB tmpfs. Every case is one line naming the
output and the reason, exit code 2, no traceback, and nothing left in the folder.

As root (as here) chmod does not stop writes, so the read-only folder is a tmpfs mounted read-only; the
fixtures skip, saying why, where neither chmod nor mount can make one."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.cli_runner import cli, ok
from tests.cli.test_hostile_input import SMALL, _model_file


def _mount_tmpfs(folder, options: str) -> str | None:
    """Mount a tmpfs with `options` on `folder`; None when mounted, else why not."""
    try:
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exited {r.returncode}")


def _unmount(folder) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)   # busy: detach it


def _writable(folder) -> bool:
    try:
        (folder / ".probe").write_bytes(b"")
    except OSError:
        return False
    (folder / ".probe").unlink()
    return True


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder no write can enter: chmod 0o555 for a user, a read-only tmpfs for root. The tmpfs is
    64 MiB, so the free-space check (16 MiB kept free) passes and the write itself is what is refused."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            if _writable(folder):
                pytest.skip("chmod 0o555 does not stop writes on this file system")
            yield folder
        finally:
            folder.chmod(0o755)
        return
    why = _mount_tmpfs(folder, "ro,size=64m")
    if why is not None:
        pytest.skip(f"running as root, where chmod does not stop writes, and a read-only tmpfs cannot be "
                    f"mounted ({why})")
    try:
        if _writable(folder):
            pytest.skip("the read-only tmpfs accepted a write")
        yield folder
    finally:
        _unmount(folder)


@pytest.fixture
def full_disk(tmp_path):
    """A real 1 MiB tmpfs (mounting needs root, or CAP_SYS_ADMIN)."""
    folder = tmp_path / "full"
    folder.mkdir()
    why = _mount_tmpfs(folder, "size=1m")
    if why is not None:
        pytest.skip(f"a 1 MiB tmpfs cannot be mounted ({why})")
    try:
        yield folder
    finally:
        _unmount(folder)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A generator file and a small measurement set (read, never written, by every case)."""
    folder = tmp_path_factory.mktemp("inputs")
    _model_file(folder / "good.safetensors")
    ok("data", "make", "--out", folder / "set", "--size", 16, "--n-train", 2, "--n-test", 1, "--center-fraction", 0.2)
    return folder


# (id, arguments with {in} for the inputs and {to} for the refusing folder, the output the error names)
WRITES = [
    ("data make", ["data", "make", "--out", "{to}/set", *SMALL], "set"),
    ("train", ["train", "--out", "{to}/run", *SMALL], "run"),
    ("reconstruct to h5", ["reconstruct", "--input", "{in}/set", "--out", "{to}/recon.h5", "--method", "zero-filled"],
     "recon.h5"),
    ("sample to npy", ["sample", "--model", "{in}/good.safetensors", "-n", "4", "--out", "{to}/s.npy"], "s.npy"),
    ("sample --split to png", ["sample", "--model", "{in}/good.safetensors", "-n", "4", "--out", "{to}/s.png",
                               "--split"], "s_0000.png"),
]


def _refused(args, inputs, folder):
    r = cli(*[a.format(to=folder, **{"in": inputs}) for a in args])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    return r.output


@pytest.mark.parametrize("args, named", [w[1:] for w in WRITES], ids=[w[0] for w in WRITES])
def test_an_output_in_a_read_only_folder_is_one_line_and_nothing_left(inputs, read_only_folder, args, named):
    out = _refused(args, inputs, read_only_folder)
    assert f"{read_only_folder / named}: " in out, out
    assert "Read-only file system" in out or "Permission denied" in out, out
    assert os.listdir(read_only_folder) == []


FULL = [*WRITES[:4], ("sample to h5", ["sample", "--model", "{in}/good.safetensors", "-n", "4", "--out",
                                         "{to}/s.h5"], "s.h5")]


@pytest.mark.parametrize("args", [w[1] for w in FULL], ids=[w[0] for w in FULL])
def test_a_full_disk_is_one_line_and_nothing_left(inputs, full_disk, args):
    """A 1 MiB tmpfs (on one, data make died by SIGSEGV with 7,500 lines of h5py errors): refused before
    writing, naming the folder and the free space."""
    out = _refused(args, inputs, full_disk)
    assert f"rsd-sci: error: {full_disk}" in out and "on disk; 1.0 MiB are free" in out, out
    assert os.listdir(full_disk) == []


def test_sample_split_on_a_disk_that_fills_midway_writes_none(inputs, full_disk):
    """--split PNG (not sized up front: a grey grid is small) on a disk with 24 KiB free: the files
    written before the disk filled are removed, so the output is all or none (it left 32 PNGs)."""
    (full_disk / "filler").write_bytes(b"\0" * (2 ** 20 - 24 * 2 ** 10))
    out = _refused(["sample", "--model", "{in}/good.safetensors", "-n", "64", "--out", "{to}/s.png", "--split"],
                   inputs, full_disk)
    assert "No space left on device" in out and f"{full_disk}/s_00" in out, out
    assert os.listdir(full_disk) == ["filler"]
