"""Bad input ends with one line naming the file and the problem, exit code 2, no traceback.

Every command is wrapped in `guarded`, so the in-process CliRunner sees exactly what a user sees.
`--debug` (a root option) shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import signal
import sys
from typing import NoReturn

import typer

DEBUG = False
EXIT_BAD_INPUT = 2
# what the machine refuses, not what the code got wrong: a full disk, a quota, a read-only or missing place
MACHINE_REFUSALS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                    errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG}


def fail(message: str) -> None:
    """Print `rsd-sci: error: message` to stderr and exit 2; a message over 300 characters loses its middle
    (it echoes a value the user gave), so the line names the file and the problem and stays short."""
    from rsd_sci.errors import shorten

    typer.echo(f"rsd-sci: error: {shorten(message)}", err=True)
    raise typer.Exit(EXIT_BAD_INPUT)


class Terminated(BaseException):
    """SIGTERM outside a training stage (whose loop saves a checkpoint first, `rsd_sci.engine.loop`):
    raised in the main thread so that every writer's clean-up runs (temporaries removed)."""


_signal_received: int | None = None


def stop_on_sigterm() -> None:
    """Make SIGTERM raise `Terminated` (the default action kills the process before any clean-up), and
    SIGINT (Ctrl-C) KeyboardInterrupt, as Python's own handler does.

    Python runs the handler between two bytecodes of the main thread, which may be inside a weakref
    callback or a `__del__`, where an exception is printed and dropped; so the handler also records the
    signal, which `raise_if_terminated` (called by every progress update) raises again."""
    def _raise(signum, frame):
        global _signal_received
        _signal_received = signum
        raise_if_terminated()

    def _drop_swallowed_stop(unraisable):
        if not isinstance(unraisable.exc_value, (Terminated, KeyboardInterrupt)):   # no "Exception ignored"
            sys.__unraisablehook__(unraisable)

    signal.signal(signal.SIGTERM, _raise)
    signal.signal(signal.SIGINT, _raise)
    sys.unraisablehook = _drop_swallowed_stop


def raise_if_terminated() -> None:
    """Raise `Terminated` if SIGTERM arrived, KeyboardInterrupt if SIGINT did (their first raise may have
    been swallowed, see above)."""
    if _signal_received == signal.SIGTERM:
        raise Terminated()
    if _signal_received == signal.SIGINT:
        raise KeyboardInterrupt()


def stopped(stop: BaseException, kept: str | None = None) -> NoReturn:
    """After SIGTERM (`Terminated`) or Ctrl-C (KeyboardInterrupt): one line, exit 128 + the signal's number.
    `kept` says what stays for a resume (a partial set's volumes); else the temporaries were removed."""
    sig = signal.SIGINT if isinstance(stop, KeyboardInterrupt) else signal.SIGTERM
    typer.echo(f"rsd-sci: stopped by {sig.name}; {kept or 'the files it was writing were removed'}", err=True)
    raise typer.Exit(128 + sig) from None


class _HeldWarnings(logging.Handler):
    """Keeps the warnings logged while a command runs (`warnings_held`)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


_held: _HeldWarnings | None = None   # the command's held warnings until released


@contextlib.contextmanager
def warnings_held():
    """Hold the warnings a command says (logged, or Python's `warnings`, logged meanwhile) until its long
    work starts (`release_warnings`: train's first stage after its input was read) or it ends: dropped when it ends with its one
    line (an error, a stop: typer.Exit with a non-zero code), printed otherwise, in order. With --debug
    they are printed as they come."""
    global _held
    if DEBUG:
        yield
        return
    _held = _HeldWarnings()
    logging.getLogger().addHandler(_held)
    logging.captureWarnings(True)
    try:
        yield
    except typer.Exit as done:
        if done.exit_code and _held is not None:
            _held.records.clear()
        raise
    finally:
        release_warnings()
        logging.captureWarnings(False)


def release_warnings() -> None:
    """Print the held warnings and let later ones through as they come (the command's work has begun)."""
    global _held
    if _held is None:
        return
    logging.getLogger().removeHandler(_held)
    for record in _held.records:
        logging.lastResort.handle(record)
    _held = None


def guarded(command):
    """Turn `rsd_sci.errors.InputError`, and an OSError the machine raised (MACHINE_REFUSALS: no space,
    read-only, no permission, ...), raised by a command into the one-line error, with no warning line
    before it (`warnings_held`). The writers are atomic
    (temporary file, then rename), so a refused write leaves the previous file or nothing."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from rsd_sci.errors import InputError

        with warnings_held():
            try:
                return command(*args, **kwargs)
            except InputError as e:
                if DEBUG:
                    raise
                fail(str(e))
            except OSError as e:
                if DEBUG or e.errno not in MACHINE_REFUSALS:
                    raise
                fail(f"{e.filename}: {e.strerror}" if e.filename else f"cannot write: {e.strerror or e}")
            except (Terminated, KeyboardInterrupt) as stop:
                stopped(stop)

    return wrapper
