"""Where a release's time goes: the deployer times each step of the start path, and the ledger keeps it.

One `StepTimer` per upload the deployer processes (`begin`); code on the path wraps its steps in
`step(name)`; the timings (milliseconds per step, and `total` since `begin`) are written to the release
with the state change that ends the start path (DEPLOYING, BOOTSTRAPPED), so they cost no write of their
own. `rollout status --json` and benchmarks/e2e_bench.py read them from the release's `steps`.

Without `begin` (a queued release started by another function) `step` only runs its block.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# The step names, in the order they happen on the start path.
LOOKUP = "lookup"  # the uploaded object's exact version (HeadObject)
RECORD = "record"  # the upload's idempotency, upload and release items
VALIDATE = "validate"  # the zip's central directory and checks file, the target's tags
UPDATE_CODE = "update_code"  # UpdateFunctionCode and the wait until Lambda has applied it
PUBLISH = "publish"  # PublishVersion (and the publish lease)
ALARMS = "alarms"  # the release's canary alarms
GROUP = "group"  # the deployment group, created or updated
CREATE = "create"  # CreateDeployment
# `total` runs from the event's arrival to the start being recorded; what no step names is the lock, the
# alias, the newest release out, CodeDeploy's active deployments, the live code's hash and the publish lease.


class StepTimer:
    def __init__(self) -> None:
        self.started = time.monotonic()
        self.millis: dict[str, int] = {}

    def add(self, name: str, seconds: float) -> None:
        self.millis[name] = self.millis.get(name, 0) + round(seconds * 1000)

    def recorded(self) -> dict[str, int]:
        return {**self.millis, "total": round((time.monotonic() - self.started) * 1000)}


_current: ContextVar[StepTimer | None] = ContextVar("rollout_step_timer", default=None)


def begin() -> StepTimer:
    """A new timer for the upload this invocation processes next."""
    timer = StepTimer()
    _current.set(timer)
    return timer


@contextmanager
def step(name: str) -> Iterator[None]:
    """Time the block as step `name` of the current upload (added up if it runs more than once)."""
    timer = _current.get()
    began = time.monotonic()
    try:
        yield
    finally:
        if timer is not None:
            timer.add(name, time.monotonic() - began)


def end() -> None:
    """Stop timing: what follows belongs to no upload's start (another release started from the queue)."""
    _current.set(None)


def recorded() -> dict[str, int]:
    """The current upload's step timings in milliseconds; {} when no upload is being timed."""
    timer = _current.get()
    return timer.recorded() if timer is not None else {}
