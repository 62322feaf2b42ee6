"""No output is an input: the one check every command that writes runs before it writes anything.

An output may neither be an input nor lie inside an input folder, `--force` or not (`--force` replaces a
previous OUTPUT only), and a folder that `--force` replaces as a whole (`data make --out`) may not hold
an input. Paths are compared as the file system sees them: symlinks followed and relative paths made
absolute (`os.path.realpath`), and existing files also by identity (`os.path.samefile`: a hard link is
the same file). An input that does not exist has nothing to lose and is not compared.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> (d / "scans").mkdir()
>>> check_outputs([d / "recon.h5"], {"--input": d / "scans"})          # beside the input: fine
>>> check_outputs([d / "scans" / "recon.h5"], {"--input": d / "scans"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
rsd_sci.errors.InputError: .../scans/recon.h5: is inside --input .../scans; outputs are never written into ...
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from rsd_sci.errors import InputError


def check_outputs(outputs: Iterable[str | Path], inputs: Mapping[str, str | Path | None],
                  replaced: bool = False) -> None:
    """InputError naming the output unless no output is an input or lies inside an input folder and, if
    the outputs are `replaced` (deleted as a whole and written anew, as `data make --out` is under
    `--force`), none is a folder that holds an input.

    Args:
        outputs: every path the command writes: files, or folders it writes into (or replaces).
        inputs: what it reads, by the flag (or words) that named it; None entries are skipped.
        replaced: whether an output folder is deleted with whatever it holds.
    """
    given = {label: Path(p) for label, p in inputs.items() if p is not None and os.path.exists(p)}
    for out in map(Path, outputs):
        where = _real(out)
        for label, inp in given.items():
            if where == _real(inp) or (os.path.exists(out) and os.path.samefile(out, inp)):
                raise InputError(out, f"is {label} {inp}; an output never replaces an input, --force or not")
            if inp.is_dir() and _real(inp) in where.parents:
                raise InputError(out, f"is inside {label} {inp}; outputs are never written into an input folder")
            if replaced and where in _real(inp).parents:
                raise InputError(out, f"holds {label} {inp}, which replacing it (--force) would delete")


def _real(path: Path) -> Path:
    """The absolute path with every symlink followed (a symlink loop is left as it is)."""
    return Path(os.path.realpath(path))
