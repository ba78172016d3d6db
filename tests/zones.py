"""Time zones west and east of UTC, for the tests that touch time: a naive datetime taken for
local time (``datetime.timestamp()`` on a naive value) shows up there and not in UTC."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

WEST, EAST = "America/Los_Angeles", "Asia/Tokyo"


@pytest.fixture(params=[WEST, EAST])
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run the test in this process under TZ=WEST, then TZ=EAST (subprocesses inherit it)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    try:
        yield request.param
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()
