"""Sessions for contributors: `nox -s tests`, `nox -s lint`, `nox -s slow`, `nox -s docs`.

Each session installs the CPU build of torch first (a plain `torch` requirement would pull
a multi-GB CUDA build on Linux), then the project with its dev extra.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
TORCH = "torch==2.13.0"


def install(session: nox.Session) -> None:
    session.install(TORCH)
    session.install("-e", ".[dev]")


@nox.session
def tests(session: nox.Session) -> None:
    """The default test run (the README's command): fast, no GPU needed."""
    install(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Slow and GPU tests too (GPU tests skip without CUDA)."""
    install(session)
    session.run("python", "-m", "pytest", "-m", "slow or gpu or not slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Ruff: lint and formatting check."""
    session.install("ruff>=0.5")
    session.run("ruff", "check", "src", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "src", "tests", "benchmarks", "noxfile.py")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site, built strictly: a broken link or anchor fails it."""
    session.install("mkdocs>=1.6", "mkdocs-material>=9.5")
    session.run("mkdocs", "build", "--strict", "--site-dir", session.create_tmp() + "/site")
