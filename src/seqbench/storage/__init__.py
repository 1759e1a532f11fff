"""The results/ layout, and how a run is saved so that a crash never leaves half a cell.

    results/<run-id>/
        results.csv   one line per finished cell, or per round of one (the contract in
                      core/schema.py); the last line of a cell id is the cell's row
        samples.csv   raw per-step timing samples: cell_id, sample_s, round, machine_s
        meta.json     schema version, state, environment, resolved configuration, plan

A rows file written elsewhere (`--csv out.csv`, `seqbench export`) carries the same sidecars
beside it: `out.samples.csv` and `out.meta.json`.

Saving a cell costs the same however long the run: its new samples are appended and
fsynced, then its row, which commits them. A reader takes each file up to its last complete
line (a crash may tear the last one) and keeps a sample only if its cell's last row is `ok`
and has reached the sample's round. A resumed run drops uncommitted samples before it
appends anything, so a rerun round is never counted twice. meta.json changes rarely and is
replaced whole (a temporary file renamed over it). When a run finishes, its files are
rewritten once if they hold superseded rows, dead samples or rows out of plan order, so a
finished one-round run is one row per cell, in plan order.
"""

from seqbench.storage.files import (
    FILE_MODE,
    META_FILE,
    ROWS_FILE,
    SAMPLES_FILE,
    CannotSave,
    atomic_write,
    check_writable,
    copy_owner,
    new_run_dir,
    now_iso,
    render_samples,
    sidecars,
    write_rows_file,
)
from seqbench.storage.lock import copy_lock
from seqbench.storage.meta import META_FORMAT, RunMeta
from seqbench.storage.read import (
    ROWS_FORMATS,
    list_run_dirs,
    load_run,
    parse_rows,
    reopen_run,
    resolve_run_path,
    saved_text,
)
from seqbench.storage.run import Run, create_run
from seqbench.storage.summary import RunSummary, summarize_runs

__all__ = [
    "FILE_MODE",
    "META_FILE",
    "META_FORMAT",
    "ROWS_FILE",
    "ROWS_FORMATS",
    "SAMPLES_FILE",
    "CannotSave",
    "Run",
    "RunMeta",
    "RunSummary",
    "atomic_write",
    "check_writable",
    "copy_lock",
    "copy_owner",
    "create_run",
    "list_run_dirs",
    "load_run",
    "new_run_dir",
    "now_iso",
    "parse_rows",
    "render_samples",
    "reopen_run",
    "resolve_run_path",
    "saved_text",
    "sidecars",
    "summarize_runs",
    "write_rows_file",
]
