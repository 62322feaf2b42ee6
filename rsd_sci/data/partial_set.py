"""A measurement set being built, kept when the build is interrupted, so that the same command continues it.

`make_measurement_set(spec, out)` writes into OUT.partial/ beside OUT (a stable name: a new process finds
it) and renames it to OUT when the set is complete:

    OUT.partial/.lock              the process building it (`RunLock`: a second one is refused)
    OUT.partial/train.h5, test.h5  the splits as far as written (`MeasurementSetWriter`)
    OUT.partial/progress.json      {"key", "samples": {"train": n, "test": m}, "next_volume", "volumes"}

A volume is the slices of one source volume within a split, written one after another. The record counts
whole volumes only, and is written once their slices are on disk (`MeasurementSetWriter.flush`): when a
volume ends at least RECORD_EVERY_S seconds after the last record (every volume of a fastMRI folder; one
record per few seconds of phantoms), and when an interrupt (Ctrl-C, SIGTERM: a BaseException that is
not an Exception) stops the build. The same build started again (the same `fingerprint`: options and
input files) cuts each split back to its recorded count and continues after it; every slice's
randomness is keyed by its volume and index, so the set is bitwise the one an uninterrupted build
writes. A build with another key starts over, saying so in one line. An error (an Exception) removes the
folder, as every failed write does, and so does an interrupt before the first volume is complete. HDF5
is not crash-safe: a split that does not read back after a kill -9 or a power loss starts the build
over (one line).

Example:
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "set"
    >>> with building(out, key="k", volumes={"train": [1, 1, 2], "test": [3]}) as part:
    ...     _ = (part.folder / "card.yaml").write_text("")   # the splits: part.writer("train", ...)
    >>> [p.name for p in out.parent.iterdir()], [p.name for p in out.iterdir()]
    (['set'], ['card.yaml'])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import h5py

from rsd_sci.data.atomic import about_target, atomic_path, replace_dir
from rsd_sci.data.measurement_set import MeasurementSetWriter
from rsd_sci.data.run_lock import LOCK_NAME, RunLock

log = logging.getLogger(__name__)
PARTIAL_SUFFIX = ".partial"
RECORD = "progress.json"
RECORD_EVERY_S = 10.0   # the least time between two records (an interrupt records at once)


def partial_folder(out: str | Path) -> Path:
    """Where the set `out` is built: 'sets/knee' -> 'sets/knee.partial'."""
    out = Path(out)
    return out.with_name(out.name + PARTIAL_SUFFIX)


def fingerprint(options: dict, files: list[Path]) -> str:
    """What makes two builds the same: a sha256 of the options (as JSON) and of each input file's
    resolved path and size (a folder, e.g. a DICOM series: of each file in it)."""
    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode())
    for f in files:
        for p in [f] if f.is_file() else sorted(q for q in f.iterdir() if q.is_file()):
            digest.update(f"\n{p.resolve()}\t{p.stat().st_size}".encode())
    return digest.hexdigest()


def resume_note(out: str | Path) -> str | None:
    """After an interrupt, what OUT.partial keeps, in words for the user ("the volumes written are kept
    in OUT.partial: run the same command again to continue from volume 13 of 20"); None when nothing is."""
    record = _read_record(partial_folder(out))
    if record is None:
        return None
    todo = ("finish" if record["next_volume"] is None
            else f"continue from volume {record['next_volume']} of {record['volumes']}")
    return f"the volumes written are kept in {partial_folder(out)}: run the same command again to {todo}"


def _read_record(folder: Path) -> dict | None:
    try:
        record = json.loads((folder / RECORD).read_text())
        return record if isinstance(record, dict) and isinstance(record.get("samples"), dict) else None
    except (OSError, ValueError):
        return None


class PartialSet:
    """OUT.partial while a build holds it: `samples` (whole volumes written, per split), the split
    writers (`writer`), the record (`volume_done`, `keep`).

    Args:
        folder: OUT.partial, locked by this process.
        key: the build's `fingerprint`; a record with another one is discarded.
        volumes: per split, the volume number (1 .. V, as the progress names them) of each slice to write.
    """

    def __init__(self, folder: Path, key: str, volumes: dict[str, list[int]]):
        self.folder, self.key, self.volumes = folder, key, volumes
        self.n_volumes = max((v for numbers in volumes.values() for v in numbers), default=0)
        self.samples = dict.fromkeys(volumes, 0)
        self._writer: MeasurementSetWriter | None = None
        self._saved = -math.inf
        record = _read_record(folder)
        why_not = None if record is None else self._why_not_continued(record)
        if record is not None and why_not is None:
            self.samples = {split: int(record["samples"][split]) for split in volumes}
            log.warning("%s: continuing from volume %s of %d (%d slices kept)", folder, self.next_volume(),
                        self.n_volumes, sum(self.samples.values()))
            return
        if why_not:
            log.warning("%s: %s; starting over", folder, why_not)
        for p in folder.iterdir():   # a fresh start: all but the lock go
            if p.is_dir():
                shutil.rmtree(p)
            elif p.name != LOCK_NAME:
                p.unlink()

    def _why_not_continued(self, record: dict) -> str | None:
        """Why the recorded build cannot be continued (None: it can)."""
        samples = record["samples"]
        if record.get("key") != self.key or set(samples) != set(self.volumes):
            return "made by another command (other options or input files)"
        for split, n in samples.items():
            if not (isinstance(n, int) and 0 <= n <= len(self.volumes[split])):
                return "made by another command (other options or input files)"
            if n and not _reads_back(self.folder / f"{split}.h5", n):
                return f"{split}.h5 does not read back (the build was killed while writing it)"
        return None

    def next_volume(self) -> int | None:
        """The number of the first volume not completely written; None when all are."""
        split = next((s for s, n in self.samples.items() if n < len(self.volumes[s])), None)
        return None if split is None else self.volumes[split][self.samples[split]]

    def writer(self, split: str, modality: str, operator: dict, seed: int) -> MeasurementSetWriter:
        """The writer of `split`, continuing after its recorded samples (`len(writer)` of them)."""
        self._writer = MeasurementSetWriter(self.folder / f"{split}.h5", modality, operator, split, seed,
                                            keep=self.samples[split])
        return self._writer

    def volume_done(self, split: str) -> None:
        """The current writer has just appended the last slice of a volume of `split`."""
        self.samples[split] = len(self._writer)
        if time.monotonic() - self._saved >= RECORD_EVERY_S:
            self._writer.flush()
            self._save()

    def keep(self) -> bool:
        """After an interrupt, with the writers closed: record the whole volumes written (True), or
        say that there are none (False)."""
        if not any(self.samples.values()):
            return False
        self._save()
        return True

    def _save(self) -> None:
        record = dict(key=self.key, samples=self.samples, next_volume=self.next_volume(), volumes=self.n_volumes)
        with atomic_path(self.folder / RECORD) as tmp, open(tmp, "w") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        self._saved = time.monotonic()


def _reads_back(path: Path, n: int) -> bool:
    """Whether the split file at `path` opens and every dataset holds and reads its first `n` samples
    (its row n - 1 is read)."""
    try:
        with h5py.File(path, "r") as f:
            for ds in f.values():
                if ds.shape[0] < n:
                    return False
                ds[n - 1]
            return "measurements" in f
    except (OSError, KeyError, ValueError, RuntimeError):
        return False


@contextlib.contextmanager
def building(out: str | Path, key: str, volumes: dict[str, list[int]], overwrite: bool = False) -> Iterator[PartialSet]:
    """Build the set `out` in OUT.partial (continued when its record has this `key`, see the module
    docstring); renamed to `out` when the block succeeds (an existing `out` is replaced if `overwrite`,
    else FileExistsError). Another process building the same set: InputError, its folder untouched."""
    out = Path(out)
    folder = partial_folder(out)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:   # a read-only or full place: the error names `out`
        raise about_target(err, folder, out) or err
    with RunLock(folder):
        part = PartialSet(folder, key, volumes)
        try:
            yield part
        except Exception as err:
            shutil.rmtree(folder, ignore_errors=True)   # a failed build leaves nothing
            if isinstance(err, OSError) and err.filename is not None:   # named as the file of `out`
                raise about_target(err, folder, out) or err
            raise
        except BaseException:
            if not part.keep():
                shutil.rmtree(folder, ignore_errors=True)
            raise
        (folder / RECORD).unlink(missing_ok=True)
    replace_dir(folder, out, overwrite)
