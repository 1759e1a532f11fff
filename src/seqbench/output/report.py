"""What an HTML report shows (see html.py for how): for a run, its results table, the
scaling plot with intervals, accuracy against cost when it has a task, how cost grows with
length, the cells that failed or are noisy, and its environment; for two runs, the
comparison table and plot beside each run's scaling plot.

Other drawings join a page as named SVGs (`html.Figure`): a history over commits, say, is
`format_run_report(rows, meta, extra=[figures_section("History", [Figure(name, svg)])])`,
or a page of its own with `html.format_page`. Nothing here prints or writes a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from seqbench.core.errors import SeqbenchError
from seqbench.core.schema import ResultRow
from seqbench.judge.scaling import compute_scaling
from seqbench.output.html import (
    Figure,
    Section,
    format_figures_html,
    format_lines_html,
    format_page,
    format_pairs_html,
    format_table_html,
    scroll,
)
from seqbench.output.layout import Column, TableText, layout
from seqbench.output.scaling import (
    format_crossovers,
    format_scaling,
    format_series,
    varying_context,
)
from seqbench.output.tables import format_comparison, format_comparison_summary, format_table
from seqbench.output.text import (
    format_arch,
    format_created,
    format_env_items,
    format_env_line,
    format_noise,
    format_plural,
    format_statuses,
)
from seqbench.storage.meta import RunMeta

# The cost charts a run report draws, in this order, when the rows have the figure.
RUN_CHARTS = ("median_s", "seq_per_s", "peak_mem_bytes")


def draw_svg(chart: Any) -> str:
    from seqbench.output.drawing import render_image

    return render_image(chart, "svg").decode()


def compute_run_figures(rows: Sequence[ResultRow], run_id: str = "") -> list[Figure]:
    """The run's plots as SVG: each cost against length (intervals drawn), and accuracy
    against step time when a task scored the cells. A metric no cell has is left out."""
    from seqbench.output.plots import PLOT_METRICS, build_chart

    metrics = [*RUN_CHARTS]
    if any(r.metric_value is not None for r in rows):
        metrics.insert(0, "metric_value")
    figures = []
    for metric in metrics:
        try:
            chart = build_chart(rows, metric, run_id)
        except SeqbenchError:  # nothing to draw for this metric (no ok cell has it)
            continue
        figures.append(Figure(PLOT_METRICS[metric], draw_svg(chart)))
    return figures


FLAGGED_COLUMNS: tuple[Column, ...] = (
    Column("cell", lambda r, _: r.cell_id, "left"),
    Column("arch", lambda r, _: format_arch(r), "left"),
    Column("status", lambda r, _: r.status, "left"),
    Column("noise", lambda r, _: format_noise(r), "left"),
    Column("message", lambda r, _: r.message or r.noisy or "-", "left", wrap=True),
)


def compute_flagged(rows: Sequence[ResultRow]) -> list[ResultRow]:
    """The cells a reader should not take at face value: not measured, or measured noisy."""
    return [r for r in rows if r.status != "ok" or r.noisy]


def format_flagged(rows: Sequence[ResultRow]) -> TableText:
    flagged = compute_flagged(rows)
    return layout(FLAGGED_COLUMNS, flagged, [None] * len(flagged), [])


def figures_section(title: str, figures: Sequence[Figure], prefix: str = "") -> Section:
    """Named SVG figures as one section; `prefix` (by default the title's letters) keeps
    their ids apart from other sections' figures on the same page."""
    prefix = prefix or "".join(c for c in title.lower() if c.isalnum()) or "x"
    return Section(title, format_figures_html(figures, prefix))


# The most cells a report's results table lists (a 20,000-row table was 6 MB of HTML).
REPORT_ROWS = 1000


def run_sections(
    rows: Sequence[ResultRow], meta: RunMeta, figures: Sequence[Figure] | None = None
) -> list[Section]:
    """The sections of a run's report; `figures` replaces the run's own plots."""
    rows = list(rows)
    run_id = meta.run_id
    drawn = compute_run_figures(rows, run_id) if figures is None else list(figures)
    table = format_table_html(format_table(rows[:REPORT_ROWS]))
    if len(rows) > REPORT_ROWS:  # a page stays readable: the run's files hold every row
        table += format_lines_html([
            f"The first {REPORT_ROWS:,} of {len(rows):,} cells; seqbench export gives every "
            "row, and the plots draw up to 200 lengths of each model (the fits use them all)."
        ])  # fmt: skip
    sections = [Section("Results", scroll(table), "results")]
    if drawn:
        sections.append(figures_section("Plots", drawn, "run"))
    scaling = compute_scaling(rows)
    if scaling.keys:
        growth = format_scaling(scaling, meta.env.get("flush_denormal"))
        body = scroll(format_table_html(growth)) + format_lines_html(format_crossovers(scaling))
        sections.append(Section("How cost grows with T", body, "scaling"))
    flagged = compute_flagged(rows)
    title = f"Flagged cells ({len(flagged)})"
    if flagged:
        body = scroll(format_table_html(format_flagged(rows)))
    else:
        body = "<p>None: every cell was measured, none flagged noisy.</p>"
    sections.append(Section(title, body, "flagged"))
    sections.append(Section("Environment", format_pairs_html(format_env_items(meta.env)), "env"))
    return sections


def run_lead(rows: Sequence[ResultRow], meta: RunMeta) -> list[str]:
    """The lines under a run report's title: when, what state, how many cells, where."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.status] = counts.get(r.status, 0) + 1
    created = format_created(meta.created_at)
    state = meta.state or "-"
    lines = [
        f"{format_plural(len(rows), 'cell')} ({format_statuses(counts)}) · {state} · "
        f"created {created} UTC"
    ]
    if meta.env:
        lines.append(format_env_line(meta.env))
    return lines


def format_run_report(
    rows: Sequence[ResultRow],
    meta: RunMeta,
    figures: Sequence[Figure] | None = None,
    extra: Sequence[Section] = (),
) -> str:
    """A run as one self-contained HTML page. `figures` (named SVGs) replaces the run's
    own plots; `extra` sections (a history, say) go after the plots."""
    label = meta.label or "run"
    title = f"seqbench report: {label} ({meta.run_id})"
    sections = run_sections(rows, meta, figures)
    at = next((i for i, s in enumerate(sections) if s.anchor == "flagged"), len(sections))
    sections[at:at] = list(extra)
    return format_page(title, run_lead(rows, meta), sections)


def ratio_figure(comparison: Any) -> Figure | None:
    """Each cell's candidate/baseline ratio with its 95% interval, and the threshold band."""
    from seqbench.output.drawing import render_ratios

    cells = [c for c in comparison.cells if c.ratio is not None]
    if not cells:
        return None
    columns = varying_context([c.cell for c in cells])  # what tells the cells apart
    svg = render_ratios(
        [f"{format_series(c.cell, columns)} T={c.cell.seq_len}" for c in cells],
        [c.ratio for c in cells],
        [c.ci_low for c in cells],
        [c.ci_high for c in cells],
        [c.verdict for c in cells],
        comparison.threshold,
        f"{comparison.metric.name}: candidate / baseline per cell",
    )
    return Figure(f"{comparison.metric.name} ratio per cell, with its 95% interval", svg)


def format_comparison_report(
    comparison: Any,
    baseline: tuple[Sequence[ResultRow], RunMeta],
    candidate: tuple[Sequence[ResultRow], RunMeta],
    extra: Sequence[Section] = (),
) -> str:
    """Two runs as one HTML page: the verdicts, the ratio plot, both runs' scaling plots,
    the flagged cells of each and the two environments."""
    base_rows, base_meta = baseline
    cand_rows, cand_meta = candidate
    title = f"seqbench comparison: {comparison.baseline_id} → {comparison.candidate_id}"
    figures = [f for f in (ratio_figure(comparison),) if f is not None]
    for rows, meta, side in (
        (base_rows, base_meta, "baseline"),
        (cand_rows, cand_meta, "candidate"),
    ):
        for figure in compute_run_figures(rows, meta.run_id)[:1]:
            figures.append(Figure(f"{side}: {figure.title}", figure.svg))
    sections = [
        Section("Comparison", scroll(format_table_html(format_comparison(comparison))), "compare"),
        figures_section("Plots", figures, "cmp"),
        *extra,
    ]
    for rows, meta, side in (
        (base_rows, base_meta, "Baseline"),
        (cand_rows, cand_meta, "Candidate"),
    ):
        flagged = compute_flagged(rows)
        if flagged:
            sections.append(
                Section(
                    f"{side}: flagged cells ({len(flagged)})",
                    scroll(format_table_html(format_flagged(rows))),
                )
            )
        env = format_pairs_html(format_env_items(meta.env))
        sections.append(Section(f"{side} environment ({meta.run_id})", env))
    return format_page(title, format_comparison_summary(comparison), sections)
