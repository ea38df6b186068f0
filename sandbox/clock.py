"""Sandbox time: real time scaled by `speed`, the one clock every sandbox report uses.

At speed 60 one sandbox minute passes in one real second, so a Canary10Percent5Minutes deployment
shifts in five real seconds while every timestamp it reports still reads five minutes apart.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._real_origin = time.monotonic()
        self._sandbox_origin = time.time()
        self._cond = threading.Condition()

    def now(self) -> float:
        """Sandbox time as epoch seconds."""
        return self._sandbox_origin + (time.monotonic() - self._real_origin) * self.speed

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def real_seconds(self, sandbox_seconds: float) -> float:
        """How long `sandbox_seconds` of sandbox time take in real time."""
        return sandbox_seconds / self.speed

    def sleep(self, sandbox_seconds: float, stop: threading.Event | None = None) -> bool:
        """Wait `sandbox_seconds` of sandbox time; returns True early if `stop` is set."""
        delay = max(0.0, self.real_seconds(sandbox_seconds))
        if stop is not None:
            return stop.wait(delay)
        time.sleep(delay)
        return False
