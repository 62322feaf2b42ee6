"""The one exception type for bad user input.

The CLI turns an `InputError` into a one-line message, exit code 2, no traceback.
"""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input a user can fix: names the file (if any) and the problem.

    >>> str(InputError("a.h5", "no 'kspace' dataset"))
    "a.h5: no 'kspace' dataset"
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(problem if path is None else f"{path}: {problem}")
