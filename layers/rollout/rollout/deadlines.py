"""How long the current invocation may still wait (pure).

Lambda ends an invocation at its timeout without warning. A wait that outlives the invocation
leaves its release where it was (RECEIVED or QUEUED, the lock and the publish lease held) until
the reconciler notices, so every wait is bounded by the time the invocation has left, minus a
reserve in which the release can still be recorded and announced.
"""

from __future__ import annotations

import math
import time
from typing import Any, NamedTuple

# Enough for a conditional ledger write, a metric and an SNS publish after a wait gives up (the
# clients retry: a throttled write can take a few seconds).
RESERVE_SECONDS = 10.0


class Deadline(NamedTuple):
    """A `time.monotonic()` value by which waiting must stop; `at=None` means no invocation limit
    (scripts, tests and the CLI run outside Lambda). `ends` is when Lambda ends the invocation
    (`at` plus the reserve); without it, `at` is taken as the end."""

    at: float | None = None
    ends: float | None = None

    @classmethod
    def of_invocation(cls, lambda_context: Any, reserve_seconds: float = RESERVE_SECONDS) -> Deadline:
        """The deadline of the invocation `lambda_context` belongs to; no limit without a context."""
        remaining_ms = getattr(lambda_context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            return cls()
        now, seconds = time.monotonic(), remaining_ms() / 1000
        return cls(now + max(0.0, seconds - reserve_seconds), now + max(0.0, seconds))

    def remaining(self) -> float:
        """Seconds left to wait (infinite without a limit, never negative)."""
        if self.at is None:
            return math.inf
        return max(0.0, self.at - time.monotonic())

    def until_end(self) -> float:
        """Seconds until the invocation ends, reserve included (infinite without a limit): nothing this
        invocation does, not even recording its outcome, happens later than that."""
        end = self.ends if self.ends is not None else self.at
        if end is None:
            return math.inf
        return max(0.0, end - time.monotonic())

    def bound(self, seconds: float) -> float:
        """`seconds`, or what is left of the invocation if that is less."""
        return min(seconds, self.remaining())


NO_DEADLINE = Deadline()
