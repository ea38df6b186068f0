"""A traffic generator: invokes a function's alias at a steady rate so that metrics flow during a rollout."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TrafficReport:
    sent: int = 0
    errors: int = 0
    by_version: Counter[str] = field(default_factory=Counter)


class TrafficGenerator:
    """Invokes `function:alias` `rate` times a second on a background thread until stopped.

    Bounded: it stops by itself after `max_seconds` or `max_requests`, whichever comes first.
    """

    def __init__(
        self,
        lambda_client: Any,
        function: str,
        alias: str = "live",
        rate: float = 20.0,
        max_seconds: float = 600.0,
        max_requests: int = 100_000,
    ) -> None:
        self.client = lambda_client
        self.function = function
        self.alias = alias
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.report = TrafficReport()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"traffic-{function}", daemon=True)

    def __enter__(self) -> TrafficGenerator:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> TrafficReport:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        return self.report

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        next_at = time.monotonic()
        while (
            not self._stop.is_set() and time.monotonic() < deadline and self.report.sent < self.max_requests
        ):
            self._invoke_once()
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _invoke_once(self) -> None:
        try:
            resp = self.client.invoke(
                FunctionName=self.function, Qualifier=self.alias, Payload=json.dumps({"path": "/"}).encode()
            )
            version = resp.get("ExecutedVersion", "?")
            failed = "FunctionError" in resp
            resp["Payload"].read()
        except Exception:  # noqa: BLE001 - traffic must keep flowing whatever one call does
            version, failed = "?", True
        with self._lock:
            self.report.sent += 1
            self.report.by_version[version] += 1
            if failed:
                self.report.errors += 1
