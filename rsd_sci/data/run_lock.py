"""One training process (tree) per run directory: RUN/.lock, created atomically, names its holder.

    with RunLock(run_dir):      # InputError (one line) when another live process holds it
        ...                     # the lock file is removed on the way out, also after an exception

The file holds {"pid", "host", "started"} as JSON. A folder the lock created goes with it when nothing
else was written to it, or when the start was refused (an InputError) before the run's config.yaml was
written (e.g. data built, then a batch larger than the set): a refused start leaves no half-made run.
A lock left by a process that died without cleaning up (kill -9, power loss) is broken when its holder
is on this host and no longer running, with a warning naming it. The file appears whole (written as a
temporary, then hard-linked into place, which fails if a lock exists), so an empty lock is one that an
older version's process left when killed while creating it: it is broken too. A holder on another host (a shared
file system) cannot be checked, so the message says which file to remove once that run is gone. Once
held, the lock removes the temporaries such dead processes left in the folder
(`rsd_sci.data.atomic.remove_stale_temporaries`). Under torchrun only rank 0 takes the lock (the ranks
are one run).

Example:
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> with RunLock(run):
    ...     (run / ".lock").is_file()
    True
    >>> (run / ".lock").exists()
    False
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

from rsd_sci.data.atomic import process_alive, remove_stale_temporaries, temporary_sibling
from rsd_sci.errors import InputError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"


class RunLock:
    """The lock of one run directory (see the module docstring); `enabled=False` makes it a no-op (the
    torchrun ranks other than 0)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / LOCK_NAME
        self.enabled = enabled
        self.held = False

    def __enter__(self) -> "RunLock":
        if not self.enabled:
            return self
        if self.path.parent.exists() and not self.path.parent.is_dir():
            raise InputError(self.path.parent, "is a file, not a run folder: give --out a folder")
        self.made_folder = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):   # a second try after breaking a stale lock
            try:
                self._create()
            except FileExistsError:
                self._break_if_stale()
                continue
            self.held = True
            remove_stale_temporaries(self.path.parent)   # what this run's killed processes left
            return self
        raise InputError(self.path.parent, "is locked by another run that keeps restarting; try again")

    def _create(self) -> None:
        """Create the lock with its holder in it, whole or not at all; FileExistsError if one exists."""
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        tmp = temporary_sibling(self.path)
        tmp.write_text(json.dumps(holder))
        try:
            os.link(tmp, self.path)   # atomic, and refuses an existing lock as O_EXCL would
        except FileExistsError:
            raise
        except OSError:   # a file system without hard links: create, then write
            with os.fdopen(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "w") as f:
                json.dump(holder, f)
        finally:
            tmp.unlink(missing_ok=True)

    def _break_if_stale(self) -> None:
        """Remove the lock when its holder died on this host; else InputError naming the holder."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:   # released between our attempt and this read
            return
        except (OSError, UnicodeDecodeError):
            raise InputError(self.path, "is not a readable run lock; remove it if no run uses this folder") from None
        if not text:   # killed while an older version created it
            log.warning("%s: removing an empty lock, left by a process killed while taking it", self.path.parent)
            self.path.unlink(missing_ok=True)
            return
        try:
            holder = json.loads(text)
            pid, host, started = int(holder["pid"]), str(holder["host"]), str(holder.get("started", "?"))
        except (ValueError, KeyError, TypeError):   # half-written or foreign: no holder named
            raise InputError(self.path, "is not a readable run lock; remove it if no run uses this folder") from None
        if host == socket.gethostname() and not process_alive(pid):
            log.warning("%s: removing the lock of process %d (started %s), which is no longer running",
                        self.path.parent, pid, started)
            self.path.unlink(missing_ok=True)
            return
        raise InputError(self.path.parent, f"is in use by another run (process {pid} on {host}, started {started}); "
                                           f"wait for it, use another --out, or remove {self.path} if it is gone")

    def __exit__(self, exc_type, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
            folder = self.path.parent
            refused = exc_type is not None and issubclass(exc_type, InputError)
            if self.made_folder and (not any(folder.iterdir()) or (refused and not (folder / "config.yaml").exists())):
                shutil.rmtree(folder)   # only what this start wrote: the lock made the folder
