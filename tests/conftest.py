from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner


@pytest.fixture(autouse=True)
def restore_process_settings():
    """`seqbench run` sets torch's threads and subnormal mode for its process; in tests that
    process is pytest's, so put them back after each test."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)


@pytest.fixture
def one_thread():
    """For tests of tiny models: a second thread buys them nothing, and on a busy 2-core machine
    its synchronisation made them 10-100x slower. `restore_process_settings` undoes it."""
    torch.set_num_threads(1)


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
