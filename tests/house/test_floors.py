"""Every import runs down the house: the floors that docs/architecture.md draws, checked on the code.

FLOORS lists the floors, top first; each holds one or more rooms (a folder or a file). A file may import
the files of its own room and those of any lower floor; two rooms of one floor never import each other.
The module graph is read from the sources: top-level and function-local imports alike (an import put
inside a function to dodge a circle is still an arrow), and the lazy names of rsd_sci/__init__.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

FLOORS = (   # top first: (rooms, what they hold); paths from the repository root
    (("cli/",), "the commands: flags, one-line errors, progress bars, printing"),
    (("rsd_sci/__init__.py",), "the Python API's names, each imported on first use"),
    (("rsd_sci/api.py",), "the API's functions that no floor below has"),
    (("rsd_sci/apps/",), "programs: train, evaluate, reconstruct_files, describe, resolve"),
    (("rsd_sci/report/",), "report.md and its figures, from a run's files"),
    (("rsd_sci/engine/",), "training: stages, loop, checkpoints, DDP, sampling, model files"),
    (("rsd_sci/config.py",), "the resolved run configuration"),
    (("rsd_sci/posterior/",), "A-DPS, the generator prior, classical baselines"),
    (("rsd_sci/distill/",), "the distiller: fake-score and generator updates, SiD losses"),
    (("rsd_sci/diffusion/", "rsd_sci/data/"), "Model record, EDM, losses, samplers | sets, readers, simulation"),
    (("rsd_sci/measurement/",), "the measurement model: one class per operator family"),
    (("rsd_sci/physics/", "rsd_sci/metrics/", "rsd_sci/disk_space.py", "rsd_sci/memory_guard.py"),
     "operators | image metrics, distances | guards"),
    (("rsd_sci/errors.py", "rsd_sci/keyed_random.py", "rsd_sci/presets.py", "rsd_sci/version.py"),
     "the ground: errors, keyed draws, presets, version"),
)


def drawing() -> str:
    """FLOORS as docs/architecture.md draws them (rooms under rsd_sci/ without the prefix)."""
    names = ["  ".join(r.removeprefix("rsd_sci/") for r in rooms) for rooms, _ in FLOORS]
    width = max(map(len, names)) + 2
    return "\n".join(f"  {name:<{width}}{says}" for name, (_, says) in zip(names, FLOORS))


def room_of(path: str) -> tuple[int, str]:
    """(floor, room) of a file, floor 1 the ground."""
    for i, (rooms, _) in enumerate(FLOORS):
        for room in rooms:
            if path == room or (room.endswith("/") and path.startswith(room)):
                return len(FLOORS) - i, room
    raise AssertionError(f"{path} stands on no floor: add it to FLOORS here and to docs/architecture.md")


def file_of(module: str) -> str | None:
    """The file of one of our modules (None: not ours, or a name that is no module)."""
    base = ROOT / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.relative_to(ROOT).as_posix()
    return None


def imported_files(path: Path):
    """(line, file) for every module of ours that `path` imports, anywhere in it."""
    tree = ast.parse(path.read_text(), str(path))
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] if node.level else ())
            module = ".".join(p for p in (base, node.module or "") if p)
            modules = [module] + [f"{module}.{a.name}" for a in node.names]   # `from pkg import submodule`
        elif isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_HOMES":
            modules = list(ast.literal_eval(node.value).values())   # rsd_sci's lazy names: imported on use
        else:
            continue
        for module in modules:
            found = file_of(module)
            if found is not None:
                yield node.lineno, found


def upward_arrows() -> list[str]:
    arrows = []
    for path in sorted([*ROOT.joinpath("rsd_sci").rglob("*.py"), *ROOT.joinpath("cli").rglob("*.py")]):
        here = path.relative_to(ROOT).as_posix()
        floor, room = room_of(here)
        for line, there in imported_files(path):
            their_floor, their_room = room_of(there)
            if their_room != room and their_floor >= floor:
                arrows.append(f"{here}:{line} imports {there} (floor {floor} -> {their_floor})")
    return sorted(set(arrows))


def test_every_import_runs_down_a_floor():
    arrows = upward_arrows()
    assert not arrows, "imports that do not run down the house (docs/architecture.md):\n" + "\n".join(arrows)


def test_architecture_page_draws_these_floors():
    page = (ROOT / "docs" / "architecture.md").read_text()
    assert drawing() in page, ("docs/architecture.md must hold the floors as tests/house/test_floors.py draws them:\n"
                               + drawing())


def test_an_upward_import_is_found(tmp_path, monkeypatch):
    """The check sees a function-local import of a higher floor, and a file outside every floor."""
    # __import__ of a dotted name returns the package `tests`; with a fromlist it returns this module
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    (tmp_path / "rsd_sci" / "physics").mkdir(parents=True)
    (tmp_path / "rsd_sci" / "apps").mkdir()
    (tmp_path / "rsd_sci" / "apps" / "train.py").write_text("")
    (tmp_path / "rsd_sci" / "physics" / "mri.py").write_text("def f():\n    from rsd_sci.apps import train\n")
    (arrow,) = upward_arrows()
    assert arrow.startswith("rsd_sci/physics/mri.py:2 imports rsd_sci/apps/train.py")
    (tmp_path / "rsd_sci" / "stray.py").write_text("")
    try:
        upward_arrows()
    except AssertionError as err:
        assert "rsd_sci/stray.py stands on no floor" in str(err)
    else:
        raise AssertionError("a file outside every floor passed")
