"""The two versions `seqbench ab` measures, each ready to start a worker process.

A version is named the way users change code:
- a git ref of the user's repository (`main`, `HEAD~1`, a tag, a commit), checked out in a
  temporary worktree whose folder (and its `src/`, if it has one) goes first on the import
  path, so that `--arch mypkg.models:make_core` imports that version's code;
- `.`, the repository as it is now, uncommitted changes included;
- `python:PATH`, another Python interpreter (a torch upgrade, say), which must have
  seqbench installed; it keeps its own packages, with the current folder first on its path.
The worktrees are removed when the comparison ends, whatever happens.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from seqbench.core.errors import SeqbenchError
from seqbench.machine.launch import Launch

INTERPRETER = "python:"


@dataclass(frozen=True)
class Version:
    name: str  # as the user gave it
    launch: Launch
    commit: str | None = None  # the git commit, for a ref or `.`
    dirty: bool = False  # `.` with uncommitted changes


def _git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise SeqbenchError("seqbench ab needs git to check out a version: install git") from None
    if done.returncode != 0:
        raise subprocess.CalledProcessError(done.returncode, args, done.stdout, done.stderr)
    return done.stdout.strip()


def _repository(repo: Path) -> Path:
    try:
        return Path(_git(repo, "rev-parse", "--show-toplevel"))
    except subprocess.CalledProcessError:
        raise SeqbenchError(f"--repo {repo}: not a git repository") from None


def _import_paths(folder: Path) -> tuple[str, ...]:
    src = folder / "src"
    return (str(folder), str(src)) if src.is_dir() else (str(folder),)


def _interpreter(name: str) -> Version:
    python = name[len(INTERPRETER) :]
    if not python:
        raise SeqbenchError(f"{name}: give the interpreter's path, as in python:/path/to/python")
    try:
        done = subprocess.run(
            [python, "-c", "import seqbench.execute.worker"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except OSError as exc:
        raise SeqbenchError(f"{name}: cannot run it ({exc.strerror or exc})") from None
    if done.returncode != 0:
        raise SeqbenchError(
            f"{name}: this interpreter cannot import seqbench's worker; install seqbench in it"
        )
    cwd = str(Path.cwd())
    return Version(name, Launch(python=python, path=(cwd,), inherit_path=False, cwd=cwd))


def _checkout(name: str, repo: Path, into: Path) -> Version:
    try:
        commit = _git(repo, "rev-parse", "--verify", "--quiet", f"{name}^{{commit}}")
    except subprocess.CalledProcessError:
        raise SeqbenchError(f"{name}: no such commit, branch or tag in {repo}") from None
    try:
        _git(repo, "worktree", "add", "--detach", "--quiet", str(into), commit)
    except subprocess.CalledProcessError as exc:
        last = (exc.stderr or "").strip().splitlines()[-1:] or ["git worktree add failed"]
        raise SeqbenchError(f"{name}: cannot check it out ({last[0]})") from None
    return Version(name, Launch(path=_import_paths(into), cwd=str(into)), commit)


def _as_it_is(repo: Path) -> Version:
    commit = _git(repo, "rev-parse", "HEAD")
    dirty = bool(_git(repo, "status", "--porcelain", "--untracked-files=no"))
    return Version(".", Launch(path=_import_paths(repo), cwd=str(repo)), commit, dirty)


def worker_problem(version: Version) -> str | None:
    """Why seqbench's worker cannot start in `version` (the last line of its error: a ref from
    before the worker existed, a working tree that does not import), or None if it starts."""
    launch = version.launch
    try:
        done = subprocess.run(
            [launch.python, "-c", "import seqbench.execute.worker"],
            capture_output=True,
            text=True,
            env=launch.environment(),
            cwd=launch.cwd,
            timeout=120,
        )
    except OSError as exc:
        return exc.strerror or str(exc)
    except subprocess.TimeoutExpired:
        return "importing it took more than 120 s"
    if done.returncode == 0:
        return None
    last = [line for line in done.stderr.splitlines() if line.strip()][-1:]
    return last[0].strip() if last else f"exit code {done.returncode}"


@contextlib.contextmanager
def checked_out(names: tuple[str, str], repo: Path) -> Iterator[tuple[Version, ...]]:
    """The versions named, ready to run; their worktrees removed afterwards."""
    root = None if all(n.startswith(INTERPRETER) for n in names) else _repository(repo)
    scratch = Path(tempfile.mkdtemp(prefix="seqbench-ab-"))
    made: list[Path] = []
    try:
        versions = []
        for i, name in enumerate(names):
            if name.startswith(INTERPRETER):
                versions.append(_interpreter(name))
            elif name == ".":
                versions.append(_as_it_is(root))
            else:
                folder = scratch / f"version-{i + 1}"
                versions.append(_checkout(name, root, folder))
                made.append(folder)
        yield tuple(versions)
    finally:
        for folder in made:
            with contextlib.suppress(subprocess.CalledProcessError, SeqbenchError):
                _git(root, "worktree", "remove", "--force", str(folder))
        if made:
            with contextlib.suppress(subprocess.CalledProcessError, SeqbenchError):
                _git(root, "worktree", "prune")
        shutil.rmtree(scratch, ignore_errors=True)
