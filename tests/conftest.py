"""Root fixtures of the test-suite (pytest puts this folder on ``sys.path``, so test modules
share model builders through ``import builders``)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

# Subprocesses the tests start (the CLI, flows) get one intra-op thread too: on a loaded 2-core
# machine torch's default two threads made their training steps up to 90x slower.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread per test: the suite's tensors are small, and on a shared 2-core machine
    intra-op threads only contend (and a test that changes the count cannot leak it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
