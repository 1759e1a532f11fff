"""One live writer per run folder.

A writer holds an exclusive `flock` on `RUN/.lock` for as long as it may add to the run.
The kernel drops the lock when the process ends however it ends (`kill -9` included), so a
lock left by a dead process is never an obstacle: no pid files to clean, no staleness to
guess. The file names the holder (pid, host, since when) for the message a second writer
gets. `flock` is advisory and local: two machines writing one folder over NFS are not
stopped by it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path

from seqbench.core.errors import ResultsError
from seqbench.storage.files import now_iso

LOCK_FILE = ".lock"


class RunLock:
    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, or raise one line naming the process that holds it."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            raise ResultsError(
                f"{self.path.parent.name}: another seqbench is writing this run ({holder}); "
                "wait for it to finish, or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        note = {"pid": os.getpid(), "host": socket.gethostname(), "since": now_iso()}
        os.write(fd, (json.dumps(note) + "\n").encode())
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            note = json.loads(os.pread(fd, 4096, 0) or b"{}")
            return f"pid {note['pid']} on {note['host']}, since {note['since']}"
        except (OSError, ValueError, KeyError, TypeError):
            return "its pid is unknown"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __del__(self) -> None:  # a Run dropped without finishing: let others write
        self.release()
