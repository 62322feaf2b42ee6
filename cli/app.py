"""The `rsd-sci` command line: parses, validates, calls rsd_sci, prints. No science here.

Heavy imports (torch, h5py, sigpy, monai) happen inside the commands so `rsd-sci --help` is instant.
"""

from __future__ import annotations

import typer

from cli import data_cmd, evaluate_cmd, info_cmd, reconstruct_cmd, report_cmd, sample_cmd, train_cmd

app = typer.Typer(
    name="rsd-sci",
    help="Generative priors for MRI and CT learned from corrupted measurements only.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
app.command("train")(train_cmd.train)
app.command("sample")(sample_cmd.sample)
app.command("info")(info_cmd.info)
app.command("evaluate")(evaluate_cmd.evaluate)
app.command("reconstruct")(reconstruct_cmd.reconstruct)
app.command("report")(report_cmd.report)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show the full traceback on errors."),
) -> None:
    """rsd-sci: train, sample, reconstruct and evaluate from undersampled, sparse-view or noisy data."""
    from cli import errors

    errors.DEBUG = debug


def main() -> None:
    """The console script: the commands' own exit codes; a mistyped option or argument as one line
    (`rsd-sci: error: ...`, exit 2) instead of the parser's usage box."""
    import sys

    from cli.errors import stop_on_sigterm

    stop_on_sigterm()
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):   # not the parser's (click's) error
            raise
        command = e.ctx.command_path if getattr(e, "ctx", None) is not None else "rsd-sci"
        message = e.format_message()
        if type(e).__name__ == "NoSuchOption":
            message += f"; a path that starts with '-' goes after '--' ({command} -- PATH)"
        if message:   # empty: the help was shown (no arguments)
            typer.echo(f"rsd-sci: error: {message} (see {command} --help)", err=True)
        sys.exit(e.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
