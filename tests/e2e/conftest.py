"""One provisioned sandbox per test module: tests share the stack, each uses its own target functions.

A module sets `SPEED` (sandbox minutes per real minute) to suit what it exercises (the default keeps a
five-minute canary at five real seconds), and `PARAMETERS` for its stack beyond the template's defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from tests.support.e2e_world import RolloutWorld, rollout_world

DEFAULT_SPEED = 60.0


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[RolloutWorld]:
    speed = float(getattr(request.module, "SPEED", DEFAULT_SPEED))
    stack = "e2e-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").replace("_", "-")[:20]
    # Expected failures (killed workers, injected throttling) are logged by the sandbox; the tests assert
    # on their effects instead.
    logging.getLogger("sandbox").setLevel(logging.CRITICAL)
    parameters = dict(getattr(request.module, "PARAMETERS", {}))
    with rollout_world(stack, speed, parameters=parameters) as running:
        yield running
        running.sb.faults.clear()
