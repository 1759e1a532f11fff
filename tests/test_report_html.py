"""`seqbench report --html`: one self-contained page. Its content (tables, plots, flagged
cells, environment), that it names no web address to fetch, that run text is escaped, and,
where Chromium is installed, that a real browser renders it and its table sorts."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess

import pytest

from seqbench.cli import app
from seqbench.core.schema import ResultRow
from seqbench.output.html import Figure, compute_sort_key, format_figures_html
from seqbench.storage.meta import RunMeta
from tests.helpers import make_cell, power_rows, save_run

pytest.importorskip("matplotlib")

EVIL = "<script>alert('x')</script>"
LENGTHS = [32, 64, 128, 256]


def report_rows(task: bool = False) -> list[ResultRow]:
    """rnn and lstm at four lengths with intervals, one noisy cell, one failed cell."""
    rows = power_rows("rnn", LENGTHS, 1.0) + power_rows("lstm", LENGTHS, 1.2, scale=2e-5)
    rows = [
        dataclasses.replace(
            r,
            ci_low_s=r.median_s * 0.95,
            ci_high_s=r.median_s * 1.08,
            iqr_s=r.median_s * 0.04,
            core_params=120 if r.arch == "rnn" else 480,
            noisy="its interval is ±30%, wider than ±10%"
            if r.seq_len == 128 and r.arch == "lstm"
            else "",
        )  # fmt: skip
        for r in rows
    ]
    if task:
        rows = [
            dataclasses.replace(
                r,
                task="digits",
                metric="accuracy",
                chance_value=0.1,
                metric_value=(0.5 if r.arch == "rnn" else 0.8) + r.seq_len / 10_000,
            )  # fmt: skip
            for r in rows
        ]
    failed = ResultRow.for_cell(
        make_cell(arch="gru", seq_len=64), status="error", message=f"boom {EVIL} & more"
    )
    return rows + [failed]


def write_report(cli, tmp_path, rows=None, label=EVIL, extra=()):
    env = {"cpu": "<i>Evil & Co</i>"}
    run = save_run(tmp_path / "results", rows or report_rows(), label=label, env=env)
    out = tmp_path / "report.html"
    args = ["report", run.run_id, "--html", str(out), "--root", str(tmp_path / "results")]
    result = cli.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"wrote {out} (")
    return out.read_text(), run


def test_a_run_report_holds_the_tables_the_plots_and_the_flagged_cells(cli, tmp_path):
    page, run = write_report(cli, tmp_path)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<table class="sortable">') == 3  # results, scaling, flagged
    assert page.count("<svg") == 3  # step time, throughput, peak memory
    assert page.count("<figcaption>") == 3
    for section in (
        "Results",
        "Plots",
        "How cost grows with T",
        "Flagged cells (2)",
        "Environment",
    ):
        assert f"<h2>{section}</h2>" in page
    assert "median ± IQR/2" in page and "time ∝ T^k" in page
    flagged = page[page.index("Flagged cells (2)") : page.index("<h2>Environment")]
    assert "lstm-T128" in flagged and "gru-T64" in flagged and "rnn-T32" not in flagged
    assert run.run_id in page
    # Each figure has its own ids: the clip paths of one never clip another.
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))


def test_a_run_with_a_task_adds_accuracy_against_cost(cli, tmp_path):
    page, _ = write_report(cli, tmp_path, rows=report_rows(task=True))
    assert page.count("<svg") == 4
    assert "<figcaption>accuracy against cost</figcaption>" in page


def test_the_page_fetches_nothing(cli, tmp_path):
    page, _ = write_report(cli, tmp_path)
    links = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']*)', page, flags=re.IGNORECASE)
    assert links and all(link.startswith("#") for link in links), set(links)
    assert "<link" not in page and "@import" not in page and "url(http" not in page
    # The only web addresses left are SVG's namespace names, which nothing fetches.
    addresses = set(re.findall(r"https?://[^\s\"'<>)]+", page))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def test_text_from_the_run_is_escaped(cli, tmp_path):
    page, _ = write_report(cli, tmp_path)
    assert EVIL not in page and "<i>Evil" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # label and message
    assert "&lt;i&gt;Evil &amp; Co&lt;/i&gt;" in page
    assert page.count("<script>") == 1  # the sorting script, and nothing else


def test_cells_sort_by_the_number_they_show():
    assert compute_sort_key("1.5 ms ± 2.0%") == pytest.approx(1.5e-3)
    assert compute_sort_key("477 µs") == pytest.approx(477e-6)
    assert compute_sort_key("0.977 MiB") == pytest.approx(0.977 * 2**20)
    assert compute_sort_key("2.11k (1.00×)") == pytest.approx(2110)
    assert compute_sort_key("0.0042×") == pytest.approx(0.0042)
    assert compute_sort_key("-") is None and compute_sort_key("ok") is None


def test_figures_given_by_a_caller_are_shown_in_the_order_given():
    svg = '<?xml version="1.0"?><svg id="a"><use xlink:href="#a"/></svg>'
    html = format_figures_html([Figure("first", svg), Figure("second <b>", svg)])
    assert html.index("first") < html.index("second &lt;b&gt;")
    assert 'id="f0-a"' in html and 'href="#f1-a"' in html and "<?xml" not in html


def test_a_comparison_report_shows_the_ratios_and_both_runs(cli, tmp_path):
    rows = report_rows()
    base = save_run(tmp_path / "r", rows, label="base")
    slower = [
        dataclasses.replace(
            r, median_s=r.median_s * 1.5, ci_low_s=r.ci_low_s * 1.5, ci_high_s=r.ci_high_s * 1.5
        )
        if r.median_s
        else r
        for r in rows
    ]
    cand = save_run(tmp_path / "r", slower, label="cand")
    out = tmp_path / "cmp.html"
    result = cli.invoke(
        app,
        ["report", base.run_id, cand.run_id, "--html", str(out), "--root", str(tmp_path / "r")],
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert f"{base.run_id} → {cand.run_id}" in page
    assert "<h2>Comparison</h2>" in page and "verdict" in page
    assert page.count("<svg") == 3  # the ratios, and each run's step time
    assert "<figcaption>time ratio per cell, with its 95% interval</figcaption>" in page
    assert "Baseline environment" in page and "Candidate environment" in page


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--html", "out.txt"], "error: --html out.txt: give a file name ending in .html"),
        (["--html", "r.html", "--arch", "tcn"], "error: --arch: this run has no cells with arch"),
    ],
)
def test_bad_requests_are_one_line(cli, tmp_path, args, message):
    run = save_run(tmp_path, report_rows(), label="a")
    result = cli.invoke(app, ["report", run.run_id, "--root", str(tmp_path), *args])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stderr.strip().splitlines()[0].startswith(message)


def browser() -> str | None:
    return next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p),
        None,
    )


def headless(*args: str) -> subprocess.CompletedProcess:
    found = browser()
    if found is None:
        pytest.skip("no Chromium here (apt-get install chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(
        [found, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


def test_chromium_renders_the_report_and_its_table_sorts(cli, tmp_path):
    page, _ = write_report(cli, tmp_path)
    # A click on "median ± IQR/2", as a reader would, then the DOM as Chromium holds it.
    click = (
        "<script>[...document.querySelectorAll('th')].find(th => "
        "th.textContent.startsWith('median')).click();</script></body>"
    )
    clicked = tmp_path / "clicked.html"
    clicked.write_text(page.replace("</body>", click))
    dom = headless("--dump-dom", clicked.as_uri()).stdout
    assert dom.count("<svg") == 3 and "<table" in dom
    results = dom[dom.index('id="results"') : dom.index('id="scaling"')]
    medians = [float(v) for v in re.findall(r'<td class="num" data-sort="([^"]+)">[^<]*±', results)]
    assert len(medians) == 8 and medians == sorted(medians)
    assert 'data-dir="asc"' in results


def test_chromium_screenshots_the_report(cli, tmp_path):
    from matplotlib.image import imread

    write_report(cli, tmp_path)
    shot = tmp_path / "shot.png"
    headless("--window-size=1200,1600", f"--screenshot={shot}", (tmp_path / "report.html").as_uri())
    pixels = imread(shot)
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 0.05  # tables and plots, not a blank page


def test_a_caller_adds_named_figures_as_a_section_of_the_run_report():
    from seqbench.output.drawing import render_image
    from seqbench.output.plots import build_chart
    from seqbench.output.report import figures_section, format_run_report

    rows = report_rows()
    svg = render_image(build_chart(rows, "median_s"), "svg").decode()
    history = figures_section("History", [Figure("median over commits", svg)])
    page = format_run_report(rows, RunMeta(run_id="r1", label="x"), extra=[history])
    assert page.index("<h2>Plots</h2>") < page.index("<h2>History</h2>")
    assert page.index("<h2>History</h2>") < page.index("<h2>Flagged cells (2)</h2>")
    assert "<figcaption>median over commits</figcaption>" in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the same drawing twice, its ids apart


def test_the_report_side_never_imports_torch_or_pandas():
    from tests.test_layers import loaded_after

    modules = loaded_after(
        "import seqbench.output.report, seqbench.output.html, seqbench.cli.report"
    )
    assert "torch" not in modules and "pandas" not in modules
    assert "matplotlib" not in modules  # drawn only when a report is written


def test_a_run_with_nothing_measured_still_reports_why():
    from seqbench.output.report import format_run_report

    rows = [ResultRow.for_cell(make_cell(arch="gru"), status="oom", message="out of memory")]
    page = format_run_report(rows, RunMeta(run_id="r1", label="big"))
    assert page.count("<svg") == 0 and "<h2>Plots</h2>" not in page
    assert "<h2>Flagged cells (1)</h2>" in page and "out of memory" in page
