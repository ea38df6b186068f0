"""Fault injection for tests: failing API calls (before they are served, or after: the service did it, the
caller is told it failed), killing Lambda workers (after some time, or when they make a given call), and
dropping, duplicating or dead-lettering events."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PatternMatcher = Callable[[dict[str, Any], dict[str, Any]], bool]  # (EventBridge pattern, event) -> matches


@dataclass
class CallFault:
    service: str
    operation: str
    error_code: str
    share: float
    message: str
    status: int | None
    remaining: int | None
    injected: int = 0
    path_contains: str | None = None  # only requests whose path has this (e.g. "/functions/orders/")
    # False: the call fails before it is served (it never happens); True: it is served, then the caller
    # is answered the error instead of the service's answer (it happened; the caller is told it failed)
    after_serving: bool = False


@dataclass
class CallKill:
    """Kill the Lambda worker of `function_name` that makes a `service`:`operation` call."""

    function_name: str
    service: str
    operation: str
    remaining: int
    after_call: bool  # False: before the call is served (it never happens); True: once it is done,
    # before the caller hears the answer
    killed: int = 0


@dataclass
class WorkerKill:
    function_name: str
    version: str | None
    remaining: int
    after_seconds: float


@dataclass
class EventFault:
    action: str  # "drop", "duplicate" or "dead-letter"
    pattern: dict[str, Any]
    remaining: int | None
    matched_ids: list[str] = field(default_factory=list)


class Faults:
    """What a test asked to go wrong. Every rule is consumed under one lock, so shares hold under load."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._calls: list[CallFault] = []
        self._kills: list[WorkerKill] = []
        self._call_kills: list[CallKill] = []
        self._events: list[EventFault] = []

    def fail(
        self,
        service: str,
        operation: str,
        error_code: str,
        share: float = 1.0,
        count: int | None = None,
        message: str | None = None,
        status: int | None = None,
        path_contains: str | None = None,
        after_serving: bool = False,
    ) -> CallFault:
        """Fail `share` of calls to `service`:`operation` (botocore names, e.g. "lambda", "Invoke") with
        `error_code`, at most `count` times; with `path_contains`, only requests whose path has it.

        With `after_serving` the call is served first and the caller is answered the error instead of
        the service's answer: a 500 or a throttle after the service committed, as AWS can answer
        ("Operations might also time out or encounter other server issues before they complete, even
        though the request has already returned a result": Amazon EC2 developer guide, "Ensuring
        idempotency in Amazon EC2 API requests"). The caller's SDK may then retry the call."""
        if not 0.0 <= share <= 1.0:
            raise ValueError("share must be between 0 and 1")
        fault = CallFault(
            service=service,
            operation=operation,
            error_code=error_code,
            share=share,
            message=message or f"Injected fault: {error_code}",
            status=status,
            remaining=count,
            path_contains=path_contains,
            after_serving=after_serving,
        )
        with self._lock:
            self._calls.append(fault)
        return fault

    def kill_on_call(
        self, function_name: str, service: str, operation: str, count: int = 1, after_call: bool = False
    ) -> CallKill:
        """Kill the worker of `function_name` that calls `service`:`operation`, `count` times: before the
        call is served (it never happens), or with `after_call` once it is done but before the caller
        hears the answer (it happened; the caller never learns it did)."""
        kill = CallKill(function_name, service, operation, count, after_call)
        with self._lock:
            self._call_kills.append(kill)
        return kill

    def kill_worker(
        self, function_name: str, version: str | None = None, count: int = 1, after_seconds: float = 0.05
    ) -> None:
        """Kill the worker running the next `count` invocations of the function (optionally one version),
        `after_seconds` into the invocation."""
        with self._lock:
            self._kills.append(WorkerKill(function_name, version, count, after_seconds))

    def drop_event(self, pattern: dict[str, Any], count: int | None = 1) -> EventFault:
        """Drop events matching an EventBridge-style pattern (e.g. {"source": ["aws.s3"]})."""
        return self._add_event_fault("drop", pattern, count)

    def duplicate_event(self, pattern: dict[str, Any], count: int | None = 1) -> EventFault:
        """Deliver events matching the pattern twice."""
        return self._add_event_fault("duplicate", pattern, count)

    def dead_letter_event(self, pattern: dict[str, Any], count: int | None = 1) -> EventFault:
        """Fail delivery of matching events to their targets: each goes to its target's dead-letter queue
        (if it has one), as EventBridge does once it gives up."""
        return self._add_event_fault("dead-letter", pattern, count)

    def clear(self) -> None:
        with self._lock:
            self._calls.clear()
            self._kills.clear()
            self._call_kills.clear()
            self._events.clear()

    def _add_event_fault(self, action: str, pattern: dict[str, Any], count: int | None) -> EventFault:
        fault = EventFault(action, pattern, count)
        with self._lock:
            self._events.append(fault)
        return fault

    # Consumers (the sandbox's own components)

    def call_fault(
        self, service: str | None, operation: str | None, path: str = "", after_serving: bool = False
    ) -> CallFault | None:
        """The rule that fails this call (consumed if found): one that fails it before it is served, or
        with `after_serving` one that replaces the answer of the call once served."""
        if service is None or operation is None:
            return None
        with self._lock:
            for fault in self._calls:
                if fault.service != service or fault.operation != operation:
                    continue
                if fault.after_serving != after_serving:
                    continue
                if fault.path_contains is not None and fault.path_contains not in path:
                    continue
                if fault.remaining is not None and fault.remaining <= 0:
                    continue
                if self._random.random() >= fault.share:
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.injected += 1
                return fault
        return None

    def call_kill(self, function_name: str, service: str | None, operation: str | None) -> CallKill | None:
        """The rule that kills `function_name`'s worker for making this call, or None (consumed if found)."""
        with self._lock:
            for kill in self._call_kills:
                if kill.remaining <= 0 or (kill.function_name, kill.service, kill.operation) != (
                    function_name,
                    service,
                    operation,
                ):
                    continue
                kill.remaining -= 1
                kill.killed += 1
                return kill
        return None

    def worker_kill(self, function_name: str, version: str) -> float | None:
        """Seconds into the invocation at which to kill the worker, or None."""
        with self._lock:
            for kill in self._kills:
                if kill.remaining <= 0 or kill.function_name != function_name:
                    continue
                if kill.version is not None and kill.version != version:
                    continue
                kill.remaining -= 1
                return kill.after_seconds
        return None

    def event_action(self, event: dict[str, Any], matches: PatternMatcher) -> str | None:
        """ "drop", "duplicate", "dead-letter" or None for an event; `matches(pattern, event)` tests a
        pattern. The verdict is remembered per event id so an event reaching several rules is treated
        the same everywhere."""
        event_id = str(event.get("id", ""))
        with self._lock:
            for fault in self._events:
                if event_id and event_id in fault.matched_ids:
                    return fault.action
            for fault in self._events:
                if fault.remaining is not None and fault.remaining <= 0:
                    continue
                if not matches(fault.pattern, event):
                    continue
                if fault.remaining is not None:
                    fault.remaining -= 1
                fault.matched_ids.append(event_id)
                return fault.action
        return None
