"""A `dgterm serve` of its own for the hostile clients (a real subprocess on loopback), with
small limits so that every abuse is cheap to send: a 64 KiB body, a queue of 16, a header
deadline of one second, two served names and a key."""

from __future__ import annotations

import pytest

from tests.server.hostile.checks import KEY, NAMES


@pytest.fixture(scope="package")
def server():
    from dgterm.server.spawn import spawn

    served = spawn("--max-batch", "4", "--max-queue", "16", "--max-body", "65536", "--max-tokens", "512",
                   "--header-timeout", "1", "--body-timeout", "2", "--served-model-name", *NAMES,
                   env={"DGTERM_API_KEY": KEY})
    served.key = KEY
    yield served
    served.stop()
