"""Busy neighbours for the benchmark scripts: CPU-bound processes beside a measurement.

Each spinner watches its parent and stops when the script that started it does, however
the script ends: a script killed mid-run must not leave its neighbours spinning beside the
next measurement (one left behind once turned a "quiet" coverage run into a busy one).

Run on its own, it keeps `N` neighbours busy until Ctrl-C, to measure beside them by hand:

    python benchmarks/neighbours.py 1 &   # then seqbench run ... in another shell
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator

SPIN = "import os\nparent = os.getppid()\nwhile os.getppid() == parent: pass"


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """`n` CPU-bound processes beside whatever runs inside the block."""
    spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(n)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("n", type=int, nargs="?", default=1, help="busy processes (default 1)")
    args = parser.parse_args()
    with busy(args.n), contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
    return 0


if __name__ == "__main__":
    sys.exit(main())
