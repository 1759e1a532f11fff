"""The files of a run: their names, and the two ways they are written (whole and atomic, or
appended and fsynced)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import stat
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

from seqbench.core.errors import ResultsError
from seqbench.storage.csvio import SAMPLES_HEADER
from seqbench.storage.csvio import render_samples as render_batch
from seqbench.storage.meta import META_FORMAT, RunMeta

ROWS_FILE = "results.csv"
SAMPLES_FILE = "samples.csv"
META_FILE = "meta.json"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes its file private (0600); a results file or a plot is for sharing, so it gets
# the mode an ordinary open() would give it.
FILE_MODE = 0o666 & ~_umask()


def _target(path: Path) -> tuple[Path, bool]:
    """Where writing `path` lands, following symbolic links, and whether that is a special
    file: a device or a pipe, or anything under /dev or /proc (/dev/stdout, /dev/null), which
    must be written to in place, never replaced by a new file."""
    current = Path(os.path.abspath(path))
    for _ in range(40):  # no more links than the kernel would follow
        if str(current).startswith(("/dev/", "/proc/")):
            return current, True
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return current, False
        if not stat.S_ISLNK(mode):
            return current, not stat.S_ISREG(mode)
        current = Path(os.path.abspath(os.path.join(current.parent, os.readlink(current))))
    return current, True


def is_special(path: Path) -> bool:
    return _target(path)[1]


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never a mix.
    A device or a pipe (`--out /dev/stdout`) is written to as it is, never replaced; a
    symbolic link keeps pointing where it did."""
    mode = "wb" if isinstance(data, bytes) else "w"
    text = {} if isinstance(data, bytes) else {"encoding": "utf-8", "newline": ""}
    target, special = _target(path)
    if special:
        with open(target, mode, **text) as fh:
            fh.write(data)
        return
    path = target  # through a symbolic link: the file it names is replaced, not the link
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, **text) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def append_synced(path: Path, text: str) -> None:
    """Append and fsync: once this returns, the lines survive a crash or a power cut."""
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def sidecars(rows_path: Path) -> tuple[Path, Path]:
    """(samples, meta) paths for a rows file: run folders use fixed names, others a prefix."""
    if rows_path.name == ROWS_FILE:
        return rows_path.with_name(SAMPLES_FILE), rows_path.with_name(META_FILE)
    stem = rows_path.with_suffix("")
    return Path(f"{stem}.samples.csv"), Path(f"{stem}.meta.json")


class CannotSave(OSError):
    """Writing one of a run's files failed (a full disk, a folder removed). `target` is the
    rows file whose files those are: the run folder's results.csv, or the --csv copy."""

    def __init__(self, target: Path, cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.target = target


@contextlib.contextmanager
def saving(target: Path) -> Iterator[None]:
    """Turn an OSError while writing the files of the rows file `target` into CannotSave."""
    try:
        yield
    except CannotSave:
        raise
    except OSError as exc:
        raise CannotSave(target, exc) from exc


# A cell's samples as (round, count, machine_s) batches, in order: the rounds they were
# measured in, and the machine's reference time in each (None: not timed).
Batches = list[tuple[int, int, float | None]]
Rounds = dict[str, Batches]


def by_process(batches: Batches, per_process: int, samples: list[float]) -> list[list[float]]:
    """A cell's samples split by the fresh process they came from: each process ran
    `per_process` passes, one process after the other, so pass r (1-based) was process
    (r - 1) // per_process."""
    groups: dict[int, list[float]] = {}
    start = 0
    for round_no, count, _ in batches:
        groups.setdefault((round_no - 1) // per_process, []).extend(samples[start : start + count])
        start += count
    return [groups[k] for k in sorted(groups)]


def machine_by_process(batches: Batches, per_process: int) -> list[float] | None:
    """The machine's reference time in each process (the geometric mean over its passes),
    in the order of `by_process`; None unless every pass of two or more processes timed it."""
    times: dict[int, list[float]] = {}
    for round_no, _, machine in batches:
        if machine is None:
            return None
        times.setdefault((round_no - 1) // per_process, []).append(machine)
    if len(times) < 2:
        return None
    return [statistics.geometric_mean(times[k]) for k in sorted(times)]


def render_samples(samples: dict[str, list[float]], rounds: Rounds | None = None) -> str:
    """A whole samples file. Samples whose rounds are not known are tagged round 1, which
    every `ok` row of their cell commits."""
    parts = [SAMPLES_HEADER]
    for cell_id, values in samples.items():
        batches = (rounds or {}).get(cell_id) or []
        if sum(n for _, n, _ in batches) != len(values):
            batches = [(1, len(values), None)]
        start = 0
        for round_no, n, machine in batches:
            parts.append(render_batch(cell_id, values[start : start + n], round_no, machine))
            start += n
    return "".join(parts)


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def new_run_dir(root: Path, label: str) -> Path:
    """A fresh folder named <UTC time>-<label>; a suffix keeps two runs in one second apart."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(
            f"--out {root}: cannot create the results root ({exc.strerror or exc})"
        ) from None
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{re.sub(r'[^A-Za-z0-9_.-]', '_', label)}"
    for attempt in range(1, 1000):
        path = root / (base if attempt == 1 else f"{base}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ResultsError(
                f"--out {root}: cannot create a run folder there ({exc.strerror or exc})"
            ) from None
        return path
    raise ResultsError(f"{root}: could not create a unique run folder for {base}")


def write_rows_file(
    rows_path: Path,
    rows: str | bytes,
    samples: dict[str, list[float]],
    meta: RunMeta,
    rounds: Rounds | None = None,
) -> None:
    """Write a rendered rows file with its sidecars, so that `load_run` can read it back
    (to a device or a pipe, the rows alone: there is nowhere beside it to put the rest).
    `rounds`: the samples' batches, which keep the processes they came from apart."""
    if is_special(rows_path):
        atomic_write(rows_path, rows)
        return
    samples_path, meta_path = sidecars(rows_path)
    # Samples and metadata first: a rows file never names a cell its samples lack.
    atomic_write(samples_path, render_samples(samples, rounds))
    atomic_write(meta_path, render_meta(meta))
    atomic_write(rows_path, rows)


def render_meta(meta: RunMeta) -> str:
    """meta.json's text."""
    return json.dumps(meta.to_dict(), indent=2, default=str) + "\n"


RUN_FILES = ("results.csv", "samples.csv", "meta.json")


def owning_run(path: Path) -> Path | None:
    """The run folder whose own file `path` (or one of the sidecars written beside it) would
    replace, if any: writing there would overwrite the run's results."""
    rows = Path(path).resolve()
    for target in (rows, *sidecars(rows)):
        meta = target.parent / "meta.json"
        if target.name in RUN_FILES and meta.is_file():
            try:
                if json.loads(meta.read_text(encoding="utf-8")).get("format") == META_FORMAT:
                    return target.parent
            except (OSError, ValueError, AttributeError, RecursionError):
                continue
    return None


def copy_owner(rows_path: Path) -> str | None:
    """The run whose rows a rows file holds, as the metadata beside it names it: None when
    there is no such file, or nothing readable names a run."""
    meta_path = sidecars(Path(rows_path))[1]
    try:
        if not Path(rows_path).is_file():
            return None
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        return None
    run_id = meta.get("run_id")
    return run_id if isinstance(run_id, str) and run_id else None


def check_writable(path: Path, flag: str, *, special_ok: bool = False) -> None:
    """Refuse, in one line, a rows file seqbench could not write, or one that belongs to a
    run (a run's own results.csv, say): before anything is measured, not after."""
    folder = owning_run(path)
    if folder is not None:
        raise ResultsError(
            f"{flag} {path}: that is the run {folder.name}'s own file; writing it would replace "
            "that run's results (choose another file)"
        )
    path = Path(path)
    if path.is_dir():
        raise ResultsError(f"{flag} {path}: is a folder; give a file name")
    target, special = _target(path)
    if special:
        if not os.path.exists(target):
            raise ResultsError(f"{flag} {path}: cannot write it (no such file or device)")
        if not special_ok:
            raise ResultsError(
                f"{flag} {path}: not a regular file; seqbench appends to it and writes its "
                "samples and metadata beside it, so give a file name"
            )
        if not os.access(path, os.W_OK):
            raise ResultsError(f"{flag} {path}: cannot write it (permission denied)")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ResultsError(f"{flag} {path}: cannot write it ({exc.strerror or exc})") from None
