"""Refuse work that cannot fit in memory before allocating it: one line naming the input, not a
MemoryError (or the kernel's OOM kill) minutes later.

    check_fits_in_memory(nbytes, "the 100000×100000 phantoms", path=None)

`available_memory()` reads MemAvailable from /proc/meminfo (Linux); elsewhere it returns None and no
check is made. A request is refused when it asks for more than `share` (default half) of what is
available: the estimates are rough (working copies, FFT buffers), and the rest of the run needs room too.

Example:
    >>> check_fits_in_memory(1024, "a tiny array")   # passes
    >>> try:
    ...     check_fits_in_memory(2 ** 62, "a huge array", "x.nii")
    ... except Exception as e:
    ...     print(str(e).split(" needs")[0])
    x.nii: a huge array
"""

from __future__ import annotations

from pathlib import Path

from rsd_sci.errors import InputError


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (MemAvailable), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_fits_in_memory(nbytes: float, what: str, path: str | Path | None = None, share: float = 0.5) -> None:
    """InputError naming `path` and `what` when nbytes exceeds `share` of the available memory."""
    available = available_memory()
    if available is not None and nbytes > share * available:
        raise InputError(path, f"{what} needs about {nbytes / 2**30:,.1f} GiB of memory; "
                               f"{available / 2**30:,.1f} GiB are available")
