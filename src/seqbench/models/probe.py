"""Import and build a user's architecture in a process of its own, before seqbench trusts it.

    python -m seqbench.models.probe package.module:factory '{"input_size": 32, "hidden": 32, ...}'

A factory is the user's code: its module may hang on import, crash the interpreter, or call
`sys.exit`. The configuration check runs it here first, under time limits, so that any of
those costs one line of error instead of the run. The process says each step as it is
done, one word a line (`imported`, `built`, then `ok` once the module's forward pass on a
probe input returned), so that a step that hangs can be named; a problem seqbench can name
is one line on stderr and exit 2.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    import json

    from seqbench.core.errors import SeqbenchError
    from seqbench.models.base import CoreShape
    from seqbench.models.custom import OK, STEPS, build_module, check_callable, import_named, wrap

    name, shape = argv[0], CoreShape(**json.loads(argv[1]))
    try:
        factory = import_named(name)
        print(STEPS[0], flush=True)
        check_callable(name, factory)
        module = build_module(name, factory, shape)
        print(STEPS[1], flush=True)
        wrap(name, module, shape)
    except SeqbenchError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(OK, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
