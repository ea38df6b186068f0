"""Every AWS call the sandbox served: service, operation, who called, and how it ended.

The record answers "how many calls does a release make, and which": `Sandbox.calls` (a CallLog) in the
sandbox's process, `GET /_sandbox/calls?since=<seq>` from another one. A call is one HTTP request to the
endpoint; the caller is the role session that signed it (a function's execution role, CodeDeploy's service
role) or "operator" for any other credentials (tests, the CLI, the person at the keyboard).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

OPERATOR = "operator"


@dataclass(frozen=True)
class Call:
    seq: int
    at: float  # time.time() when the answer started
    service: str
    operation: str
    role: str  # the role's name, or OPERATOR
    session: str  # the role session (a function's name, "AWSCodeDeploy"), or ""
    status: int
    error: str  # the error code when the service named one (x-amzn-ErrorType), else ""
    # CPU the sandbox's request thread spent on it, from the request's arrival to its answer's status
    # (parsing, authorising, serving, rendering; not the HTTP server's reading and writing).
    cpu_ms: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status < 400

    @property
    def outcome(self) -> str:
        if self.ok:
            return "ok"
        return self.error or f"http {self.status}"

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "outcome": self.outcome}


class CallLog:
    """Append-only, thread-safe; `mark()` then `since(mark)` gives the calls of one scenario."""

    def __init__(self) -> None:
        self._calls: list[Call] = []
        self._lock = threading.Lock()

    def record(
        self,
        service: str,
        operation: str,
        role: str,
        session: str,
        status: int,
        error: str = "",
        cpu_ms: float = 0.0,
    ) -> None:
        with self._lock:
            self._calls.append(
                Call(len(self._calls), time.time(), service, operation, role, session, status, error, cpu_ms)
            )

    def mark(self) -> int:
        """The sequence number the next call will get."""
        with self._lock:
            return len(self._calls)

    def since(self, mark: int = 0) -> list[Call]:
        with self._lock:
            return self._calls[mark:]

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


def by_operation(calls: Iterable[Call], by_role: bool = True) -> Counter[str]:
    """Counts keyed "service:Operation" (prefixed with "role " when by_role), failures marked with their
    outcome."""
    counts: Counter[str] = Counter()
    for call in calls:
        key = f"{call.service}:{call.operation}"
        if not call.ok:
            key += f" [{call.outcome}]"
        if by_role:
            key = f"{call.role} {key}"
        counts[key] += 1
    return counts


def cpu_by_operation(calls: Iterable[Call]) -> dict[str, dict[str, float]]:
    """Per "service:Operation": how many calls, the sandbox CPU they took in all (ms) and per call (ms),
    the costliest first."""
    totals: dict[str, list[float]] = {}
    for call in calls:
        entry = totals.setdefault(f"{call.service}:{call.operation}", [0, 0.0])
        entry[0] += 1
        entry[1] += call.cpu_ms
    ordered = sorted(totals.items(), key=lambda item: -item[1][1])
    return {
        name: {"calls": int(count), "cpu_ms": round(cpu, 1), "ms_per_call": round(cpu / count, 2)}
        for name, (count, cpu) in ordered
    }


def from_json(items: Iterable[dict[str, Any]]) -> list[Call]:
    """Calls read back from the /_sandbox/calls endpoint."""
    fields = set(Call.__dataclass_fields__)
    return [Call(**{k: v for k, v in item.items() if k in fields}) for item in items]
