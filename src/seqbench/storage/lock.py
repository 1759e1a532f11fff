"""One live writer per run folder, and per `--csv` copy.

A writer holds an exclusive `flock` on `RUN/.lock` for as long as it may add to the run.
The kernel drops the lock when the process ends however it ends (`kill -9` included), so a
lock left by a dead process is never an obstacle: no pid files to clean, no staleness to
guess. The file names the holder (pid, host, since when) for the message a second writer
gets. `flock` is advisory and local: two machines writing one folder over NFS are not
stopped by it.

A `--csv out.csv` copy is written by one run at a time too, under `.out.csv.lock` beside it
(beside the file a symbolic link names). That one is removed when its writer lets go, so
that it does not stay among the user's files; a writer that takes a lock file another one
has just removed sees so (its inode is no longer the path's) and takes the new one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path

from seqbench.core.errors import ResultsError
from seqbench.storage.files import now_iso

LOCK_FILE = ".lock"


class WriterLock:
    """An exclusive `flock` on `path`; `refusal(holder)` is the line a second writer gets.
    `removed`: the lock file is deleted on release (see the module's docstring)."""

    def __init__(self, path: Path, refusal: Callable[[str], str], *, removed: bool = False):
        self.path = path
        self._refusal = refusal
        self._removed = removed
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, note: bool = True) -> None:
        """Take the lock, or raise one line naming the process that holds it. `note`: write
        who holds it into the file, for that line."""
        for _ in range(100):  # another writer removed the file between our open and flock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise ResultsError(self._refusal(holder)) from None
            if self._is_current(fd):
                break
            os.close(fd)
        else:  # pragma: no cover - a lock file replaced a hundred times in a row
            raise ResultsError(self._refusal("its pid is unknown"))
        self._fd = fd
        if not note:
            return
        try:
            os.ftruncate(fd, 0)
            note = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}
            os.write(fd, (json.dumps(note) + "\n").encode())
        except OSError:  # no room for the note: the lock is not taken
            self.release()
            raise

    def _is_current(self, fd: int) -> bool:
        """Whether `fd` is still the file at `path` (not one a releasing writer removed)."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)

    def check(self) -> None:
        """Raise what `acquire` would, without keeping the lock: an early refusal, before
        anything is made (the lock taken later is the one that counts)."""
        self.acquire(note=False)
        self.release()

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            note = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {note['pid']} on {note['host']}, since {note['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "its pid is unknown"

    def release(self) -> None:
        if self._fd is not None:
            if self._removed:  # while still held: nobody takes the file being removed
                with contextlib.suppress(OSError):
                    os.unlink(self.path)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # a Run dropped without finishing: let others write
        self.release()


class RunLock(WriterLock):
    """The lock of a run folder: `RUN/.lock`, kept."""

    def __init__(self, folder: Path) -> None:
        super().__init__(
            folder / LOCK_FILE,
            lambda holder: (
                f"{folder.name}: another seqbench is writing this run ({holder}); "
                "wait for it to finish, or stop it first"
            ),
        )


def copy_lock(csv: Path) -> WriterLock:
    """The lock of a `--csv` copy: `.NAME.lock` beside the file it lands in, removed after."""
    target = Path(os.path.realpath(csv))
    return WriterLock(
        target.with_name(f".{target.name}.lock"),
        lambda holder: (
            f"--csv {csv}: another seqbench is writing it ({holder}); wait for it to "
            "finish, or choose another file"
        ),
        removed=True,
    )
