"""JSON: a list of row objects; 'not measured' is null."""

from __future__ import annotations

import json

from seqbench.core.schema import ResultRow


class JsonExporter:
    name = "json"
    suffixes = (".json",)
    binary = False

    def render(self, rows: list[ResultRow]) -> str:
        return json.dumps([r.to_dict() for r in rows], indent=2) + "\n"
