"""`rsd-sci info PATH`: what a fastMRI file, measurement set, NIfTI, LoDoPaB or model file holds."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.errors import guarded


@guarded
def info(
    path: Path = typer.Argument(..., help="A fastMRI .h5, measurement-set folder or split file, NIfTI, LoDoPaB or rsd-sci model file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Show shapes, dtypes, coils, slices, acceleration, noise level and attributes of PATH; for a model
    file, what it models and how it was trained (operator, preset, steps, selected iteration, size)."""
    from rsd_sci.apps.describe import describe

    facts = describe(path)
    if as_json:
        typer.echo(json.dumps(facts, indent=2, default=str))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"{facts.pop('kind')}: {facts.pop('path')}", show_header=False)
    for key, value in _rows(facts):
        table.add_row(escape(key), escape(value))   # [false, true] is no markup tag
    Console().print(table)


def _rows(facts: dict, prefix: str = ""):
    """Nested facts as dotted rows (splits.train.samples ...); lists and leaves shown compactly."""
    for key, value in facts.items():
        if key in ("kind", "path") and prefix:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not _is_small(value):
            yield from _rows(value, name + ".")
        elif isinstance(value, str):
            yield name, value
        else:
            yield name, json.dumps(value, default=str)


def _is_small(d: dict) -> bool:
    """A flat mapping of a few scalars reads best on one line (e.g. σ_n min/max/mean)."""
    return len(d) <= 4 and all(not isinstance(v, (dict, list)) for v in d.values())
