"""One intra-op thread for the model tests: the shapes are small (or the machine is shared), and OpenMP threads
spinning against other processes made the tiny-model tests ten times slower."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
