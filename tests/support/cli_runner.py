"""`rsd-sci` in-process for the tests (Typer's CliRunner: no subprocess, no ~3 s of imports per call)."""

from __future__ import annotations

from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()


def cli(*args):
    """The Result of `rsd-sci ARGS` (each argument str()-ed, so paths and numbers may be passed)."""
    return runner.invoke(app, [str(a) for a in args])


def ok(*args):
    """cli(*args), asserting exit code 0 (the command's output is the failure message)."""
    result = cli(*args)
    assert result.exit_code == 0, result.output
    return result
