"""Read-only HDF5 files opened lazily, once per process, with every failure as a one-line `InputError`.

`LazyHDF5` is the base of the lazy readers (fastMRI files, LoDoPaB files, measurement sets): the
handle opens on first use, closes with `close()` or a `with` block, reopens on the next read, and is
dropped when the object is pickled (h5py handles must not cross into DataLoader workers).
"""

from __future__ import annotations

from pathlib import Path

import h5py

from rsd_sci.errors import InputError


def open_hdf5(path: str | Path) -> h5py.File:
    """Open an HDF5 file read-only; every way it can be unreadable becomes an `InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.is_dir():
        raise InputError(path, "is a folder, not an HDF5 file")
    try:
        signed = h5py.is_hdf5(str(path))
    except OSError as err:
        raise InputError(path, f"cannot be read ({err})") from None
    if not signed:
        raise InputError(path, "not an HDF5 file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        problem = "truncated HDF5 file" if "truncated" in str(err) else "corrupt HDF5 file"
        raise InputError(path, f"{problem} ({err})") from None


class LazyHDF5:
    """Subclasses set `self._path` and `self._file = None` in their __init__."""

    _path: Path
    _file: h5py.File | None = None

    def _handle(self) -> h5py.File:
        if self._file is None:
            self._file = open_hdf5(self._path)
        return self._file

    def close(self) -> None:
        """Close the HDF5 handle (reopened on the next read)."""
        if self._file is not None:
            try:
                self._file.close()
            finally:
                self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = None
        return state
