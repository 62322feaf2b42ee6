"""`rsd-sci info PATH`: what a fastMRI file, measurement set, NIfTI or LoDoPaB file holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.errors import guarded


@guarded
def info(
    path: Path = typer.Argument(..., help="A fastMRI .h5, measurement-set folder or split file, NIfTI, LoDoPaB file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show shapes, dtypes, coils, slices, acceleration, noise level and attributes of PATH."""
    from rsd_sci.data.describe import describe

    facts = describe(path)
    if as_json:
        typer.echo(json.dumps(facts, indent=2, default=str))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{facts.pop('kind')}: {facts.pop('path')}", show_header=False)
    for key, value in facts.items():
        table.add_row(key, value if isinstance(value, str) else json.dumps(value, default=str))
    Console().print(table)
