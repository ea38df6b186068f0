"""Every authorisation the sandbox decided, counted per principal, action and deciding statement.

The permissions report (sandbox/permissions_report.py) reads these records: which actions each role used,
which were refused, and which statement of which policy allowed each one. Set SANDBOX_ACCESS_LOG to a
file path and a sandbox appends its records there as JSON lines when it stops.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.iam.policy import Decision


@dataclass(frozen=True)
class Entry:
    principal: str
    action: str
    resource: str
    allowed: bool
    reason: str
    statements: tuple[tuple[str, int, str], ...]  # (policy, statement index, Sid) of each allowing statement

    def as_json(self, count: int) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "allowed": self.allowed,
            "reason": self.reason,
            "statements": [list(s) for s in self.statements],
            "count": count,
        }


class AccessLog:
    def __init__(self) -> None:
        self._counts: Counter[Entry] = Counter()
        self._lock = threading.Lock()

    def record(self, principal: str, action: str, resource: str, decision: Decision) -> None:
        statements = tuple((m.policy, m.index, m.sid) for m in decision.allows)
        if decision.match is not None and not decision.allowed:
            statements = ((decision.match.policy, decision.match.index, decision.match.sid),)
        entry = Entry(principal, action, resource, decision.allowed, decision.reason, statements)
        with self._lock:
            self._counts[entry] += 1

    def entries(self) -> list[tuple[Entry, int]]:
        with self._lock:
            return list(self._counts.items())

    def denied(self, principal: str | None = None) -> list[Entry]:
        return [
            e for e, _ in self.entries() if not e.allowed and (principal is None or e.principal == principal)
        ]

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def append_to(self, path: Path) -> None:
        lines = [json.dumps(entry.as_json(count)) for entry, count in self.entries()]
        if lines:
            with path.open("a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")
