from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner


@pytest.fixture
def cli():
    """A CLI runner with a fixed, wide terminal so tables render the same everywhere."""
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"})


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
