"""JSON documents every reader accepts, non-finite numbers included.

JSON has no inf or nan (Python's json module writes the tokens Infinity and NaN, which strict parsers
reject), so `finite_json` writes each non-finite number as null and adds a note under NOTE_KEY: which
values they were, by JSON Pointer (RFC 6901) with their value, and why. `read_finite_json` reads such a
file back with the numbers in place, as they were before writing.

    >>> text = finite_json({"nmse": {"v.h5": float("inf")}, "psnr": 20.0}, cause="an all-zero target")
    >>> json.loads(text)["nmse"], json.loads(text)[NOTE_KEY]["values"]
    ({'v.h5': None}, {'/nmse/v.h5': 'inf'})
    >>> restore(json.loads(text))
    {'nmse': {'v.h5': inf}, 'psnr': 20.0}
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

NOTE_KEY = "non_finite"


def finite_json(document: dict, cause: str = "") -> str:
    """`document` as indented JSON text with non-finite numbers as null and, when there are any, a note
    (NOTE_KEY) listing them; `cause` says why a value may not be finite."""
    found: dict[str, str] = {}

    def clean(value: Any, pointer: str) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            found[pointer] = repr(float(value))   # 'inf', '-inf' or 'nan'
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{pointer}/{_escape(str(k))}") for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{pointer}/{i}") for i, v in enumerate(value)]
        return value

    out = clean(document, "")
    if found:
        note = "JSON has no inf or nan: these values are written as null"
        out[NOTE_KEY] = {"values": found, "note": note + (f"; {cause}" if cause else "")}
    return json.dumps(out, indent=2, allow_nan=False) + "\n"


def restore(document: dict) -> dict:
    """The document `finite_json` wrote, with NOTE_KEY removed and its values back in place."""
    for pointer, value in document.pop(NOTE_KEY, {}).get("values", {}).items():
        *parents, last = [_unescape(part) for part in pointer.split("/")[1:]]
        node = document
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        node[int(last) if isinstance(node, list) else last] = float(value)
    return document


def read_finite_json(path: str | Path) -> dict:
    """A JSON file `finite_json` wrote, its non-finite numbers restored (`restore`)."""
    return restore(json.loads(Path(path).read_text()))


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _unescape(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")
