"""Atomic writes: a file or folder appears complete under its final name, or not at all.

Every writer builds its output under a temporary name in the SAME folder (so the final rename stays on
one file system and is atomic, `os.replace`), then renames it onto the target. On an exception the
temporary file is removed, so an interrupted run never leaves a half-written file behind. A measurement
set is built in a folder beside its target (`replace_dir` renames it), which an interrupt keeps so that
the build continues (`rsd_sci.data.partial_set`).

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_path(d / "out.nii.gz") as tmp:
...     _ = tmp.write_bytes(b"x")   # tmp is d / "out.tmp-<pid>.nii.gz"
>>> (d / "out.nii.gz").read_bytes()
b'x'
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

# Suffixes that name one format together; the temporary name keeps them whole so that libraries which
# pick the format from the extension (nibabel: ".nii.gz" is gzipped NIfTI) write the right one.
_COMPOUND_SUFFIXES = (".nii.gz", ".tar.gz", ".hdr.gz", ".img.gz")


def _split_name(name: str) -> tuple[str, str]:
    """'vol.nii.gz' -> ('vol', '.nii.gz'); 'recon.h5' -> ('recon', '.h5'); 'run' -> ('run', '')."""
    lower = name.lower()
    for compound in _COMPOUND_SUFFIXES:
        if lower.endswith(compound) and len(name) > len(compound):
            return name[: -len(compound)], name[-len(compound):]
    suffix = Path(name).suffix
    return (name[: -len(suffix)], suffix) if suffix else (name, "")


def temporary_sibling(path: str | Path) -> Path:
    """The temporary name used for `path`: '<stem>.tmp-<pid><suffix>' in the same folder."""
    path = Path(path)
    stem, suffix = _split_name(path.name)
    return path.with_name(f"{stem}.tmp-{os.getpid()}{suffix}")


_TEMPORARY = re.compile(r"\.tmp-(\d+)(\.|$)")   # what temporary_sibling names: <stem>.tmp-<pid><suffix>


def process_alive(pid: int) -> bool:
    """Whether a process with this PID runs on this host (signal 0 checks without sending anything)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | Path, depth: int = 3) -> list[Path]:
    """Remove the temporaries (`temporary_sibling` names) under `folder`, `depth` levels deep, whose
    process no longer runs on this host: what a kill -9 or a power loss left. Returns them."""
    removed = []
    root = Path(folder)
    for here, dirs, files in os.walk(root):
        level = len(Path(here).relative_to(root).parts)
        for name in [*dirs, *files]:
            match = _TEMPORARY.search(name)
            if match and int(match.group(1)) != os.getpid() and not process_alive(int(match.group(1))):
                _remove(Path(here) / name)
                removed.append(Path(here) / name)
        dirs[:] = [d for d in dirs if level + 1 < depth and not _TEMPORARY.search(d)]
    for path in removed:
        log.warning("removed %s, left by a process that no longer runs", path)
    return removed


def _remove(path: Path) -> None:
    """Remove a file or folder if it exists; never raises (used while another error propagates)."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    except OSError as err:  # pragma: no cover - best effort clean-up
        log.warning("could not remove temporary %s: %s", path, err)


def about_target(err: OSError, tmp: Path, path: Path) -> OSError | None:
    """`err` re-addressed to the user's `path` when it is about the temporary (or names no file, as h5py's
    and a PNG writer's do), so the one-line error names the output, not a name that is gone; else None.

    >>> str(about_target(OSError(30, "Read-only file system", "d/out.tmp-1.h5"), Path("d/out.tmp-1.h5"), Path("d/out.h5")))
    "[Errno 30] Read-only file system: 'd/out.h5'"
    """
    if err.errno is None:
        return None
    name = None if err.filename is None else str(err.filename)
    if name is not None and name != str(tmp) and not name.startswith(str(tmp) + os.sep):
        return None
    target = str(path) if name is None else str(path) + name[len(str(tmp)):]
    return OSError(err.errno, os.strerror(err.errno), target)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path beside `path`; rename it onto `path` when the block succeeds.

    The caller writes the whole file to the yielded path (same suffix, e.g. "name.tmp-<pid>.h5").
    On success the file is moved onto `path` with `os.replace` (atomic on POSIX and Windows; an
    existing file is replaced, so callers check for `--force` first). On any exception the temporary
    file is deleted and the exception propagates.
    """
    path = Path(path)
    tmp = temporary_sibling(path)
    _remove(tmp)  # a leftover from a killed process with a recycled pid
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        _remove(tmp)
        raise about_target(err, tmp, path) or err
    except BaseException:
        _remove(tmp)
        raise


def replace_dir(built: Path, path: Path, overwrite: bool) -> None:
    """Rename the finished folder `built` to `path` (in the same folder). An existing `path` raises
    FileExistsError unless `overwrite`: then it is moved aside, `built` renamed in and the old one
    deleted, so a reader sees either the old or the new folder, never a mix."""
    if not path.exists():
        os.replace(built, path)
        return
    if not overwrite:  # appeared while it was built
        raise FileExistsError(f"{path} exists")
    old = path.with_name(f"{path.name}.old-{os.getpid()}")
    _remove(old)
    os.replace(path, old)
    os.replace(built, path)
    _remove(old)
