"""tests/engine/local/quant runs its many small ops on one thread: on a shared, busy CPU that is faster
than two threads contending (the thread count is restored afterwards)."""

import pytest


@pytest.fixture(scope="package", autouse=True)
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
