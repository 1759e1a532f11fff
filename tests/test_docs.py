"""The documentation keeps its promises: the README stays a front page, every link in it and
in docs/ leads to a file and a heading that exist, the site builds without a warning, and
the README's examples run as they are written."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
FENCE = re.compile(r"^(`{3,}|~{3,})\s*(\S*)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
RUN_ID = re.compile(r"\d{8}-\d{6}")


def blocks(path: Path) -> list[tuple[str, str, str]]:
    """The fenced code blocks of a Markdown file: (the heading above, language, code)."""
    found, heading, lang, code, inside = [], "", "", [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        fence = FENCE.match(line)
        if fence and not inside:
            inside, lang, code = True, fence.group(2), []
        elif fence and inside:
            inside = False
            found.append((heading, lang, "\n".join(code)))
        elif inside:
            code.append(line)
        elif line.startswith("#"):
            heading = line.lstrip("#").strip()
    return found


def prose(path: Path) -> list[str]:
    """The lines of a Markdown file outside its fenced code blocks."""
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            inside = not inside
        elif not inside:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """A heading's anchor as MkDocs (Python-Markdown's toc) makes it: the text as rendered,
    ASCII, punctuation but `-` and `_` dropped, lowercase, runs of spaces and `-` as one `-`."""
    text = CODE_SPAN.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text).replace("*", "")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a Markdown file (a repeated one gets _1, _2, ...)."""
    seen: dict[str, int] = {}
    for line in prose(path):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            if count:
                seen[f"{base}_{count}"] = 1
    return set(seen)


def relative_links(path: Path) -> list[str]:
    """The targets of a file's Markdown links and images that are not URLs."""
    # A code span may hold brackets (`--[no-]tf32`); a link's text may hold a code span, and
    # run over a line break.
    text = CODE_SPAN.sub("code", "\n".join(prose(path)))
    return [t for t in LINK.findall(text) if not re.match(r"[a-zA-Z][\w+.-]*:", t)]


def test_the_readme_is_a_front_page():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines: move the detail to docs/"


def test_every_page_is_reachable_from_the_readme():
    linked = {(README.parent / t.split("#")[0]).resolve() for t in relative_links(README)}
    assert [p.name for p in PAGES if p.resolve() not in linked] == []


@pytest.mark.parametrize("path", [README, *PAGES], ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(path):
    broken = []
    for target in relative_links(path):
        file, _, anchor = target.partition("#")
        destination = (path.parent / file).resolve() if file else path
        if not destination.is_file():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            broken.append(f"{target}: {destination.name} has no heading with that anchor")
    assert broken == []


def test_an_anchor_is_computed_as_mkdocs_computes_it():
    assert slug("Side by side: `seqbench ab`") == "side-by-side-seqbench-ab"
    assert slug("The seed's claim, reproduced here") == "the-seeds-claim-reproduced-here"
    assert slug("Equal sizes: `--match-params N`") == "equal-sizes-match-params-n"
    assert slug("MNIST-1D") == "mnist-1d"


def test_the_site_builds_without_a_warning(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr
    # The anchors the link check computes are the ones the site has, page by page.
    for page in PAGES:
        html = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        ids = set(re.findall(r'<h[1-6] id="([^"]+)"', html.read_text(encoding="utf-8")))
        assert ids == anchors(page), page.name


# ---------------------------------------------------------------------------------------------
# The README's examples, run as written


def seqbench_executable() -> str:
    found = shutil.which("seqbench", path=str(Path(sys.executable).parent))
    assert found, f"no seqbench executable beside {sys.executable}: is seqbench installed?"
    return found


def run_readme_command(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run a README command line in `cwd` with this tree's seqbench: the `seqbench`
    executable beside this interpreter, importing from src/ here."""
    argv = shlex.split(command)
    assert Path(argv[0]).name == "seqbench", command
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    return subprocess.run(
        [seqbench_executable(), *argv[1:]], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def readme_block(heading: str, lang: str) -> str:
    found = [code for above, kind, code in blocks(README) if (above, kind) == (heading, lang)]
    assert len(found) == 1, f"README: expected one {lang} block under {heading!r}"
    return found[0]


def test_the_readme_first_run_saves_the_cells_its_table_shows(tmp_path):
    install = readme_block("Set-up", "bash").splitlines()[0]
    first_run = install.split("&&")[-1].strip()
    assert first_run == ".venv/bin/seqbench run"  # the quick suite, no options
    done = run_readme_command(first_run, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    # The README's example ends with the line the run prints last; only the run id differs.
    shown = readme_block("What you get", "").splitlines()
    saved = next(line for line in shown if line.startswith("saved "))
    pattern = RUN_ID.pattern.join(re.escape(part) for part in RUN_ID.split(saved))
    assert re.search(pattern, output), output
    for arch in ("rnn", "lstm", "gru", "conv1d"):
        assert re.search(rf"^ {arch} +64 +infer ", done.stdout, re.M), arch
    assert len(list((tmp_path / "results").iterdir())) == 1


def test_the_readme_compare_example_runs_and_reaches_a_verdict(tmp_path):
    section = README.read_text(encoding="utf-8").split("## Comparing two runs")[1]
    cells = int(re.search(r"Each run saves (\d+) cells", section).group(1))
    *runs, compare = readme_block("Comparing two runs", "bash").splitlines()
    assert len(runs) == 2 and compare.startswith("seqbench compare ")
    for command in runs:
        done = run_readme_command(command, tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"saved {cells} cells ({cells} ok)" in done.stderr
    done = run_readme_command(compare, tmp_path)
    # The same code twice: no regression (0), or too noisy to decide (3) on a busy machine.
    # A regression (1) is a timing judgement too, which a test must not make; whatever the
    # exit code, the verdict printed must be the one it says.
    assert done.returncode in (0, 1, 3), done.stdout + done.stderr
    assert ("FAIL:" in done.stderr) == (done.returncode == 1), done.stderr
    assert ("UNDECIDED:" in done.stderr) == (done.returncode == 3), done.stderr
    counts = re.search(r"^time: (.+?) \(threshold 10%", done.stderr, re.M)
    assert counts, done.stderr
    assert sum(int(part.split()[0]) for part in counts.group(1).split(", ")) == cells
    header = r"^ arch +mode +baseline +candidate +ratio +95% CI +verdict"
    assert re.search(header, done.stdout, re.M), done.stdout


@pytest.mark.slow  # 13 s; the first-run and compare examples stay in the default run
def test_the_readme_python_example_measures_every_cell(tmp_path):
    code = readme_block("From Python", "python")
    check = '\nassert list(rows.status) == ["ok"] * len(rows) and len(rows) > 0, rows\n'
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-c", code + check], cwd=tmp_path, capture_output=True, text=True,
        timeout=600, env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "median_s" in done.stdout
