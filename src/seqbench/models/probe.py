"""Import and build a user's architecture in a process of its own, before seqbench trusts it.

    python -m seqbench.models.probe package.module:factory

A factory is the user's code: its module may hang on import, crash the interpreter, or call
`sys.exit`. The configuration check runs it here first, under a time limit, so that any of
those costs one line of error instead of the run. Prints `ok` on success; a problem seqbench
can name is one line on stderr and exit 2.
"""

from __future__ import annotations

import sys

OK = "ok"


def main(argv: list[str]) -> int:
    from seqbench.core.errors import SeqbenchError
    from seqbench.models import core_shape_example, get_arch

    try:
        spec = get_arch(argv[0])
        if spec.count_params is None:
            spec.build(core_shape_example())
    except SeqbenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(OK, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
