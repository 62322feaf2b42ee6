"""A rich progress bar as a `progress(done, total)` callback (shown on rank 0 only)."""

from __future__ import annotations

import contextlib
import os


@contextlib.contextmanager
def progress_bar(description: str):
    if int(os.environ.get("RANK", "0")) != 0:
        yield lambda done, total: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
