"""Bad input ends with one line naming the file and the problem, exit code 2, no traceback.

Every command is wrapped in `guarded`, so the in-process CliRunner sees exactly what a user sees.
`--debug` (a root option) shows the traceback instead.
"""

from __future__ import annotations

import functools

import typer

DEBUG = False
EXIT_BAD_INPUT = 2


def fail(message: str) -> None:
    """Print `rsd-sci: error: message` to stderr and exit 2."""
    typer.echo(f"rsd-sci: error: {message}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


def guarded(command):
    """Turn `rsd_sci.errors.InputError` raised by a command into the one-line error."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from rsd_sci.errors import InputError

        try:
            return command(*args, **kwargs)
        except InputError as e:
            if DEBUG:
                raise
            fail(str(e))

    return wrapper
