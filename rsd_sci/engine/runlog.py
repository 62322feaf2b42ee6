"""RUN/log.jsonl: one JSON object per logged step, written by rank 0 only.

Each line holds "stage" (teacher, distill, ...), "step" and the step's fields (loss, lr, held-out
measurement-domain loss, images/s, ...): numbers, strings, booleans or null. Non-finite floats are
written as null (JSON has no NaN). Lines are appended and flushed one at a time, so a killed run loses
at most its last line: the next write starts on a fresh line, and `read_log` skips a line cut short by
such a kill, or otherwise damaged (one warning for all). After a resume, steps between the last
checkpoint and the kill may appear twice; readers keep the last line for a step.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "log.jsonl"
    >>> RunLog(path).write(stage="teacher", step=1, loss=0.5, lr=1e-4)
    >>> read_log(path)
    [{'stage': 'teacher', 'step': 1, 'loss': 0.5, 'lr': 0.0001}]
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from pathlib import Path
from typing import Any

from rsd_sci.errors import InputError

log = logging.getLogger(__name__)


def _plain(name: str, value: Any) -> int | float | str | bool | None:
    """A log field as a JSON scalar: numpy/torch scalars become numbers, NaN/Inf become None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if hasattr(value, "item") and callable(value.item):  # 0-d torch tensors, numpy scalars
        try:
            value = value.item()
        except (ValueError, RuntimeError) as err:
            raise TypeError(f"log field {name!r} is not a scalar: {err}") from err
        if isinstance(value, bool):
            return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    raise TypeError(f"log field {name!r} must be a number, string, bool or None, "
                    f"got {type(value).__name__}")


class RunLog:
    """Appends JSON lines to `path` (parent folders created); does nothing unless `is_main`."""

    def __init__(self, path: str | Path, is_main: bool = True):
        self.path = Path(path)
        self.is_main = bool(is_main)

    def write(self, stage: str, step: int, **fields: Any) -> None:
        """Append {"stage": stage, "step": step, **fields} as one line (rank 0 only)."""
        if not self.is_main:
            return
        record = {"stage": str(stage), "step": int(step)}
        for name, value in fields.items():
            record[name] = _plain(name, value)
        line = json.dumps(record, allow_nan=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a+b") as handle:
            if handle.tell() > 0:
                handle.seek(-1, 2)
                if handle.read(1) != b"\n":  # the previous process was killed mid-line
                    line = "\n" + line
            handle.write((line + "\n").encode("utf-8"))
            handle.flush()

    __call__ = write  # a RunLog can be passed wherever a log(stage=..., step=..., **fields) callable is


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a log.jsonl in order; lines that are not a JSON object (cut short by a killed writer,
    or damaged: invalid UTF-8 too) are skipped, with one warning for all of them."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such log file")
    records, skipped = [], []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)   # bytes: decoded as UTF-8, a UnicodeDecodeError is a ValueError
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
        else:
            skipped.append(number)
    if skipped:
        log.warning("%s: skipped %d line(s) that are not JSON records (a write cut short?), the first line %d",
                    path, len(skipped), skipped[0])
    return records
