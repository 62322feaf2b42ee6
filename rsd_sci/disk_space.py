"""Refuse a write that cannot fit on its disk before writing it: one line naming the folder, not a crash
in the HDF5 library (which dies by SIGSEGV when a full disk fails its writes) minutes later.

    check_free_space(folder, nbytes, "the measurement set (512 samples)")

Example:
    >>> import tempfile
    >>> check_free_space(tempfile.gettempdir(), 1024, "a tiny file")   # passes
    >>> try:
    ...     check_free_space("/", 2 ** 62, "a huge file")
    ... except Exception as e:
    ...     print(str(e).split(" needs")[0])
    /: a huge file
"""

from __future__ import annotations

import shutil
from pathlib import Path

from rsd_sci.errors import InputError

MARGIN = 1.1            # HDF5 metadata, chunk padding
RESERVE = 16 * 2 ** 20  # bytes left free for the rest of the run (logs, the report)
FULL = 64 * 2 ** 20     # a failed write with less free than this is blamed on a full disk


def check_free_space(folder: str | Path, nbytes: float, what: str) -> None:
    """InputError naming `folder` when `nbytes` (x MARGIN, + RESERVE) exceed the free space of its disk;
    the nearest existing parent is measured when `folder` is not made yet."""
    folder = Path(folder)
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if nbytes * MARGIN + RESERVE > free:
        raise InputError(folder, f"{what} needs about {_size(nbytes * MARGIN + RESERVE)} on disk; "
                                 f"{_size(free)} are free")


def full_disk_message(folder: str | Path) -> str | None:
    """After a write into `folder` failed: "the disk is full (... free)" when less than FULL is free
    (the library's own error rarely says so: torch.save reports stream positions), else None."""
    free = shutil.disk_usage(folder).free
    return f"the disk is full ({_size(free)} free)" if free < FULL else None


def _size(nbytes: float) -> str:
    return f"{nbytes / 2 ** 30:,.2f} GiB" if nbytes >= 2 ** 30 else f"{nbytes / 2 ** 20:,.1f} MiB"
