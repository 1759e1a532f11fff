"""A run's metadata (meta.json) as one typed record: `RunMeta`.

Every key seqbench writes is a field here, with its type; nothing else reads or writes the
file's keys by name. Older files read as they always did: a key an older seqbench did not
write takes its default, and a key a newer one wrote is kept as it was (`extra`) and written
back. A key every run writes that the file lacks, or a value of the wrong type (a file
edited by hand, or damaged), reads as its default, and `missing` names it, so that whoever
needs it (a resume needs config, env and plan) can refuse in one line.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

from seqbench.core.schema import SCHEMA_VERSION

META_FORMAT = "seqbench-run"


@dataclass
class RunMeta:
    """What a run records beside its rows. The first fields are written by every run; the
    rest only by the runs that have them (a resumed run, an `ab` side, a frontier...)."""

    format: str = META_FORMAT
    schema_version: int = SCHEMA_VERSION
    run_id: str = ""
    label: str = ""
    state: str = ""  # running, complete or interrupted
    created_at: str = ""
    # Orders runs started within one second (their folder names tie on the time).
    created_ns: int | None = None
    finished_at: str | None = None
    env: dict[str, Any] = field(default_factory=dict)  # machine.env.collect_env, and more
    config: dict[str, Any] = field(default_factory=dict)  # SuiteConfig.to_dict, as asked
    plan: list[str] = field(default_factory=list)  # cell ids, in run order
    # A long plan's size and digest, as meta.json stores it (PLAN_INLINE_MAX) and as a loaded
    # run knows it: its ids are not kept, and its rows are in plan order on disk.
    plan_stored: dict[str, Any] | None = None
    # -- written by some runs
    noise: dict[str, Any] | None = None  # judge.noise.summarize, when the run finished
    ceilings: dict[str, float] = field(default_factory=dict)  # device/dtype -> TFLOP/s
    ceilings_noisy: dict[str, str] = field(default_factory=dict)  # device/dtype -> why
    resumed_at: list[str] = field(default_factory=list)
    retried: list[list[str]] = field(default_factory=list)  # cell ids, per --retry-errors
    protection_changes: list[dict[str, Any]] = field(default_factory=list)
    ab: dict[str, Any] | None = None  # one side of `seqbench ab`: side, version, partner...
    frontier: dict[str, Any] | None = None  # arch -> the frontier found
    module: dict[str, Any] | None = None  # the user's module measure_module measured
    # What `seqbench runs` lists (cells, statuses, devices), written when the run finishes,
    # so that listing runs costs the same whatever their size.
    summary: dict[str, Any] | None = None
    # Keys this seqbench does not know (a newer one wrote them): kept, and written back.
    extra: dict[str, Any] = field(default_factory=dict)
    # Keys every run writes that the file lacked, and known keys whose values had the wrong
    # type: read as their defaults (never written).
    missing: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """meta.json's contents: the optional fields only where they hold something."""
        data: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in _NOT_KEYS:
                continue
            value = getattr(self, f.name)
            if f.name == "plan":
                value = stored_plan(value) if len(value) > PLAN_INLINE_MAX else value
                value = value or self.plan_stored or []  # a loaded long plan, written back
            if f.name in _OPTIONAL and (value is None or value == {} or value == []):
                continue
            data[f.name] = value
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunMeta:
        values: dict[str, Any] = {}
        missing = [name for name in _FIRST if name not in data]
        for f in dataclasses.fields(cls):
            if f.name in _NOT_KEYS or f.name not in data:
                continue
            value = data[f.name]
            if f.name == "plan" and isinstance(value, dict) and _is_stored_plan(value):
                values["plan_stored"] = value
                continue
            if value is None and f.name in _NULLABLE:
                values[f.name] = None
            elif isinstance(value, _TYPES[f.name]) and not (
                isinstance(value, bool) and _TYPES[f.name] is int
            ):
                values[f.name] = value
            else:
                missing.append(f.name)
        known = {f.name for f in dataclasses.fields(cls)} - set(_NOT_KEYS)
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**values, extra=extra, missing=tuple(missing))

    @property
    def plan_size(self) -> int:
        """How many cells the plan holds, listed or stored as its size."""
        return len(self.plan) or int((self.plan_stored or {}).get("cells", 0))

    def replace(self, **changes: Any) -> RunMeta:
        return dataclasses.replace(self, **changes)


# A plan of more cells than this is stored as its size and a digest of its ids: the ids of a
# million cells made meta.json 60 MB, read and rewritten whole. What the ids are for is
# the rows' order, and a finished run's rows file is in plan order already; a resumed run
# plans its cells again from its configuration.
PLAN_INLINE_MAX = 10_000


def stored_plan(plan: list[str]) -> dict[str, Any]:
    """A long plan as meta.json stores it: how many cells, and the SHA-256 of their ids,
    one a line."""
    digest = hashlib.sha256("\n".join(plan).encode()).hexdigest()
    return {"cells": len(plan), "sha256": digest}


def _is_stored_plan(value: dict[str, Any]) -> bool:
    cells, digest = value.get("cells"), value.get("sha256")
    return type(cells) is int and cells >= 0 and isinstance(digest, str)


_FIELDS = {f.name: f for f in dataclasses.fields(RunMeta)}
_FIRST = ("format", "schema_version", "run_id", "label", "state", "created_at", "created_ns",
          "finished_at", "env", "config", "plan")  # fmt: skip
# Fields that are no key of the file: what it held beyond the known keys, what it lacked,
# and a long plan's stored form (written as the value of "plan").
_NOT_KEYS = ("extra", "missing", "plan_stored")
_OPTIONAL = tuple(n for n in _FIELDS if n not in _FIRST and n not in _NOT_KEYS)
_NULLABLE = ("created_ns", "finished_at", "noise", "ab", "frontier", "module", "summary")
_TYPES: dict[str, type | tuple[type, ...]] = {
    "format": str,
    "schema_version": int,
    "run_id": str,
    "label": str,
    "state": str,
    "created_at": str,
    "created_ns": int,
    "finished_at": str,
    "env": dict,
    "config": dict,
    "plan": list,
    "noise": dict,
    "ceilings": dict,
    "ceilings_noisy": dict,
    "resumed_at": list,
    "retried": list,
    "protection_changes": list,
    "ab": dict,
    "frontier": dict,
    "module": dict,
    "summary": dict,
}
