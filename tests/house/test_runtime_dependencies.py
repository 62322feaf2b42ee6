"""Every module the library and the CLI import is installed by `bash scripts/setup.sh` (no test extras).

The main job once crashed after 12 minutes on `import skimage`, a test extra only: every venv built for
the tests hid it. This reads the imports of rsd_sci/ and cli/ and maps each to the distribution that
provides it in this environment; that distribution must be a runtime requirement of rsd-sci.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OWN = {"rsd_sci", "cli"}
# Imported on use, behind a one-line install hint (rsd_sci.data.dicom.INSTALL_HINT): the `dicom` extra.
OPTIONAL = {"pydicom"}


def _imported_modules() -> dict[str, str]:
    """{top-level module: first file importing it} over rsd_sci/ and cli/ (absolute imports only)."""
    found = {}
    for path in sorted([*ROOT.joinpath("rsd_sci").rglob("*.py"), *ROOT.joinpath("cli").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                     else [])
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def _runtime_requirements() -> set[str]:
    """Normalised names of rsd-sci's requirements that carry no `extra` marker."""
    names = set()
    for req in md.requires("rsd-sci") or []:
        if "extra ==" not in req:
            names.add(_normalise(re.split(r"[ <>=!~;\[]", req, maxsplit=1)[0]))
    return names


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_import_is_a_runtime_requirement():
    providers = md.packages_distributions()
    runtime = _runtime_requirements()
    missing = []
    for module, where in _imported_modules().items():
        if module in OWN or module in OPTIONAL or module in sys.stdlib_module_names or module == "__future__":
            continue
        dists = {_normalise(d) for d in providers.get(module, [])}
        if not dists & runtime:
            missing.append(f"{module} ({where}; provided by {sorted(dists) or 'nothing installed'})")
    assert not missing, "imported at run time but not installed by setup.sh without --test: " + ", ".join(missing)


def test_the_check_sees_a_test_only_import():
    """The check itself can fail: pytest is installed here, but only as a test extra."""
    providers = md.packages_distributions()
    assert not {_normalise(d) for d in providers.get("pytest", [])} & _runtime_requirements()
