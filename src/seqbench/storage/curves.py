"""Learning curves beside a run's rows: `curves.csv`, one line per point, appended.

A task cell's curve is its validation metric every `eval_every` training steps (and at the
end), against the steps and the training seconds spent to get there. A cell's points are
appended in one write, before its row, as its samples are: a row never names a curve that
is not there yet. A cell measured again (a resumed or retried run) appends a new block;
a reader keeps each cell's last block, and drops a torn last line.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from seqbench.core.errors import ResultsError
from seqbench.storage.files import ROWS_FILE, append_synced

CURVES_FILE = "curves.csv"
CURVE_COLUMNS = ("cell_id", "step", "train_time_s", "value")
CURVES_HEADER = ",".join(CURVE_COLUMNS) + "\n"

Point = tuple[int, float, float]  # (step, training seconds, validation metric)


def curves_path(rows_path: Path) -> Path:
    """Where a rows file's curves live: curves.csv in a run folder, else NAME.curves.csv."""
    if rows_path.name == ROWS_FILE:
        return rows_path.with_name(CURVES_FILE)
    return Path(f"{rows_path.with_suffix('')}.curves.csv")


def render_curve(cell_id: str, points: list[Point]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for step, seconds, value in points:
        writer.writerow([cell_id, int(step), repr(float(seconds)), repr(float(value))])
    return buf.getvalue()


def append_curve(rows_path: Path, cell_id: str, points: list[Point]) -> None:
    """Append one cell's curve (with the header, when the file is new), synced."""
    path = curves_path(rows_path)
    head = "" if path.exists() and path.stat().st_size else CURVES_HEADER
    append_synced(path, head + render_curve(cell_id, points))


def parse_curves(text: str, where: str) -> dict[str, list[Point]]:
    """Each cell's last block of points (see the module docstring)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0] != CURVES_HEADER:
        raise ResultsError(f"{where}: not a seqbench curves file")
    if not lines[-1].endswith("\n"):
        lines = lines[:-1]  # torn by a crash mid-append
    curves: dict[str, list[Point]] = {}
    previous = None
    for number, fields in enumerate(csv.reader(lines[1:]), start=2):
        try:
            cell_id, step, seconds, value = fields
            point = (int(step), float(seconds), float(value))
        except ValueError:
            raise ResultsError(f"{where}: line {number} is not a curve point") from None
        if cell_id != previous:  # a new block: it replaces the cell's earlier one
            curves[cell_id] = []
            previous = cell_id
        curves[cell_id].append(point)
    return curves


def read_curves(rows_path: Path) -> dict[str, list[Point]]:
    """The curves beside a rows file; none when there is no curves file."""
    path = curves_path(rows_path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{path}: cannot read curves ({exc})") from None
    return parse_curves(text, str(path))
