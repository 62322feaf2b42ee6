"""A rich progress bar as a `progress(done, total, where=None)` callback (on stderr, rank 0 only,
terminals only): count, bar, done/total and the time remaining; `where` says which part is running.
Each update is also where a pending SIGTERM or Ctrl-C stops the command."""

from __future__ import annotations

import contextlib
import os

from cli.errors import raise_if_terminated


@contextlib.contextmanager
def progress_bar(description: str):
    if int(os.environ.get("RANK", "0")) != 0:
        yield lambda done, total, where=None: raise_if_terminated()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, console=console, disable=not console.is_terminal) as bar:  # no bar in logs
        task = bar.add_task(description, total=None)

        def update(done: int, total: int, where: str | None = None) -> None:
            """`where` (e.g. "train, volume 3 of 20") is shown after the description. A SIGTERM or Ctrl-C whose
            exception was swallowed stops the work here (cli.errors.stop_on_sigterm)."""
            raise_if_terminated()
            bar.update(task, completed=done, total=total,
                       **({"description": f"{description} ({where})"} if where else {}))

        yield update
