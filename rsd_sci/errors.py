"""The one exception type for bad user input.

The CLI turns an `InputError` into a one-line message, exit code 2, no traceback.
"""

from __future__ import annotations

import math
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


def shorten(text: str, limit: int = 300) -> str:
    """`text`, or its start and end around " ... " when it is longer than `limit` characters: an error's
    one line may echo a value the user gave, however long (a 10 MB string, a YAML alias bomb).

    >>> shorten("x" * 1000, 25)
    'xxxxxxxxxx ... xxxxxxxxxx'
    """
    if len(text) <= limit:
        return text
    keep = (limit - 5) // 2
    return f"{text[:keep]} ... {text[-keep:]}"


def check_range(flag: str, value, low: float | None = None, high: float | None = None, low_open: bool = True) -> None:
    """InputError (one line naming the flag) unless `value` is a finite number within the bounds; None passes.

    >>> check_range("--lr", float("nan"), 0.0)
    Traceback (most recent call last):
    ...
    rsd_sci.errors.InputError: --lr must be a finite number (got nan)
    >>> check_range("--sigma-floor", -1, 0.0, low_open=False)
    Traceback (most recent call last):
    ...
    rsd_sci.errors.InputError: --sigma-floor must be at least 0 (got -1)
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(None, f"{flag} must be a finite number (got {value!r})")
    too_low = low is not None and (value <= low if low_open else value < low)
    if too_low or (high is not None and value > high):
        bounds = ([] if low is None else [f"above {low:g}" if low_open else f"at least {low:g}"]) + \
                 ([] if high is None else [f"at most {high:g}"])
        raise InputError(None, f"{flag} must be {' and '.join(bounds)} (got {value:g})")
