"""Running checks: invoke a function with each check's event, concurrently and within time limits.

The invocation itself is a callable handed in (`Invoke`), so the judging and the time keeping are
plain Python; `lambda_ops.invoke_once` is the real one, through the project's Lambda client.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from rollout import aws

# How many checks run at once: enough to finish a typical list quickly, few enough not to throttle
# a target with low reserved concurrency.
MAX_CONCURRENT_CHECKS = 4
DEFAULT_MAX_DURATION_MS = 3000
EXCERPT_CHARS = 300
# The main thread wakes at least this often to notice checks that started late and overran.
_POLL_SECONDS = 0.05

SUCCEEDED = "Succeeded"
FAILED = "Failed"

# Lambda answers TooManyRequestsException (HTTP 429) when it refused to start the invocation: a
# concurrency or request-rate limit (botocore's lambda model, Invoke's errors: "The request
# throughput limit was exceeded", Reason ConcurrentInvocationLimitExceeded,
# ReservedFunctionConcurrentInvocationLimitExceeded, ...). The function never ran, so that one error
# is retried; every other error may have run the check (and its side effects) and is never retried.
THROTTLED_CODE = "TooManyRequestsException"


@dataclass(frozen=True)
class ThrottleRetry:
    """How a throttled check invocation is retried: bounded attempts, full-jitter pauses.

    A retry is only made when the pause and the check's own time limit both still fit before the
    run's deadline, so retrying never makes a hook report late.
    """

    attempts: int = 6
    first_pause: float = 0.2
    max_pause: float = 2.0

    def pause(self, throttles: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `throttles`-th throttled attempt (never below Retry-After)."""
        ceiling = min(self.max_pause, self.first_pause * 2 ** (throttles - 1))
        return max(random.uniform(ceiling / 2, ceiling), retry_after or 0.0)


@dataclass(frozen=True)
class Invocation:
    """What a synchronous invoke returned."""

    payload: bytes
    function_error: str | None = None
    executed_version: str | None = None


# (function name, qualifier, event payload) -> Invocation; raises on an API error.
Invoke = Callable[[str, str, bytes], Invocation]


@dataclass(frozen=True)
class Check:
    name: str
    event: Any
    max_duration_ms: int = DEFAULT_MAX_DURATION_MS
    expect: Any = None
    has_expect: bool = False
    # A start probe proves the version can start: only a runtime failure fails it (see judge_probe).
    probe: bool = False

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Check:
        """A check from one entry of a normalised checks document."""
        return cls(
            name=str(spec["name"]),
            event=spec.get("event", {}),
            max_duration_ms=int(spec.get("max_duration_ms") or DEFAULT_MAX_DURATION_MS),
            expect=spec.get("expect"),
            has_expect="expect" in spec,
        )


@dataclass
class CheckResult:
    name: str
    verdict: str
    duration_ms: int
    excerpt: str = ""
    error: str = ""
    executed_version: str | None = None
    throttled: int = 0  # invocations Lambda refused with TooManyRequestsException before this result

    @property
    def passed(self) -> bool:
        return self.verdict == SUCCEEDED

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {"name": self.name, "verdict": self.verdict, "duration_ms": self.duration_ms}
        if self.excerpt:
            record["excerpt"] = self.excerpt
        if self.error:
            record["error"] = self.error
        if self.executed_version:
            record["executed_version"] = self.executed_version
        if self.throttled:
            record["throttled"] = self.throttled
        return record


# --- the subset match ---------------------------------------------------------------------------
def subset_mismatch(expected: Any, actual: Any, path: str = "$") -> str | None:
    """Where `actual` departs from `expected`, or None when it matches.

    Objects match when every expected key is present and matches (extra keys are fine); lists and
    scalars must be equal. A JSON string (such as an API Gateway proxy `body`) is compared as the
    string it is, not parsed.
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {_short(actual)}"
        for key, value in expected.items():
            if key not in actual:
                return f"{path}.{key}: missing"
            found = subset_mismatch(value, actual[key], f"{path}.{key}")
            if found:
                return found
        return None
    if _json_equal(expected, actual):
        return None
    return f"{path}: expected {_short(expected)}, got {_short(actual)}"


def _json_equal(first: Any, second: Any) -> bool:
    """Whether two JSON values are equal as JSON: 1 and 1.0 are, true and 1 are not (Python's == says
    True == 1, also inside lists and objects, so every level is compared here)."""
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    if isinstance(first, int | float) and isinstance(second, int | float):
        return first == second
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(_json_equal, first, second))
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(_json_equal(first[k], second[k]) for k in first)
    return type(first) is type(second) and first == second


def judge(
    check: Check, invocation: Invocation, duration_ms: int, expected_version: str | None = None
) -> CheckResult:
    """The verdict on one answered invocation."""
    if check.probe:
        return judge_probe(check, invocation, duration_ms, expected_version)
    result = CheckResult(check.name, SUCCEEDED, duration_ms, executed_version=invocation.executed_version)
    text = invocation.payload.decode("utf-8", errors="replace")
    if invocation.function_error:
        return _failed(result, f"function error ({invocation.function_error})", text)
    wrong_version = version_mismatch(invocation, expected_version)
    if wrong_version:
        return _failed(result, wrong_version, text)
    if duration_ms > check.max_duration_ms:
        return _failed(result, f"took {duration_ms} ms, over the {check.max_duration_ms} ms limit", text)
    if check.has_expect:
        try:
            payload = json.loads(text) if text.strip() else None
        except ValueError:
            return _failed(result, "response is not JSON", text)
        mismatch = subset_mismatch(check.expect, payload)
        if mismatch:
            return _failed(result, f"response does not match expect: {mismatch}", text)
    return result


def version_mismatch(invocation: Invocation, expected_version: str | None) -> str:
    """Why the answer does not prove `expected_version` answered ('' when it does, or none is expected).

    Invoke names the version that ran (ExecutedVersion, the X-Amz-Executed-Version header; botocore's
    lambda model, InvocationResponse): through an alias, nothing else tells the new version's answer
    from the old one's, so an answer that does not name it proves nothing (fail closed)."""
    if not expected_version:
        return ""
    if not invocation.executed_version:
        return f"the answer does not name the version that ran (version {expected_version} expected)"
    if invocation.executed_version != expected_version:
        return f"answered by version {invocation.executed_version}, not version {expected_version}"
    return ""


# errorType prefixes of failures that happen before or around the handler, never inside it: the
# runtime could not import the module, find the handler, initialise, or stay alive; or the
# invocation timed out. Lambda's runtimes report these as Runtime.* (ImportModuleError,
# HandlerNotFound, MalformedHandlerName, ExitError, Unknown...) and Sandbox.Timedout.
START_FAILURE_PREFIXES = ("Runtime.", "Sandbox.", "Init")
PROBE_EVENT: dict[str, Any] = {"rollout": {"probe": True}}
PROBE_NAME = "start probe"
PROBE_MAX_DURATION_MS = 10_000


def start_failure(invocation: Invocation) -> str:
    """The errorType of a failure to start the function ('' if it ran its handler, or succeeded)."""
    if not invocation.function_error:
        return ""
    try:
        error_type = str(
            json.loads(invocation.payload.decode("utf-8", errors="replace")).get("errorType", "")
        )
    except (ValueError, AttributeError):
        error_type = ""
    if not error_type:
        # An error that names no type cannot prove the handler ran: fail closed.
        return f"{invocation.function_error} with no errorType"
    return error_type if error_type.startswith(START_FAILURE_PREFIXES) else ""


def judge_probe(
    check: Check, invocation: Invocation, duration_ms: int, expected_version: str | None = None
) -> CheckResult:
    """A start probe passes once the handler ran: its own error on an unknown event is fine."""
    result = CheckResult(check.name, SUCCEEDED, duration_ms, executed_version=invocation.executed_version)
    text = invocation.payload.decode("utf-8", errors="replace")
    failure = start_failure(invocation)
    if failure:
        return _failed(result, f"the version cannot start ({failure})", text)
    wrong_version = version_mismatch(invocation, expected_version)
    if wrong_version:
        return _failed(result, wrong_version, text)
    if invocation.function_error:
        result.excerpt = excerpt(text)
    return result


def _failed(result: CheckResult, error: str, text: str) -> CheckResult:
    result.verdict = FAILED
    result.error = error
    result.excerpt = excerpt(text)
    return result


def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    return excerpt(json.dumps(value, default=str), 80)


# --- running ------------------------------------------------------------------------------------
@dataclass
class _Running:
    check: Check
    started: float | None = None  # when the current attempt started; None while none runs
    finished: float | None = None
    throttled: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def run_checks(
    checks: Sequence[Check],
    invoke: Invoke,
    function: str,
    qualifier: str,
    deadline: float,
    expected_version: str | None = None,
    max_concurrency: int = MAX_CONCURRENT_CHECKS,
    clock: Callable[[], float] = time.monotonic,
    throttle_retry: ThrottleRetry = ThrottleRetry(),
    sleep: Callable[[float], None] = time.sleep,
) -> list[CheckResult]:
    """Run every check against `function:qualifier`, at most `max_concurrency` at a time.

    A check fails on an invoke error, a FunctionError, a response that does not match `expect`, or no
    answer within its `max_duration_ms` (counted from when the invocation that answered started). An
    invocation Lambda throttled never ran, so it is retried as `throttle_retry` says while a whole
    check still fits before `deadline`; no other error is retried. Nothing waits past `deadline` (a
    `clock()` value): checks unanswered or unstarted by then fail as out of time. A check that
    overran keeps its worker thread (a thread cannot be cancelled) but is no longer waited for.
    Results come back in the order of `checks`.
    """
    if not checks:
        return []
    run = _CheckRun(
        checks,
        invoke,
        function,
        qualifier,
        expected_version,
        clock,
        _Retrying(deadline, throttle_retry, sleep),
    )
    pool = ThreadPoolExecutor(
        max_workers=max(1, min(max_concurrency, len(checks))), thread_name_prefix="check"
    )
    try:
        run.submit_all(pool)
        while run.pending and clock() < deadline:
            run.collect_answers(timeout=run.next_wake(deadline))
            run.fail_overrun()
        run.fail_unanswered()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return run.results()


_Outcome = tuple[Invocation | None, BaseException | None]


@dataclass(frozen=True)
class _Retrying:
    """The run's deadline and its throttle policy, as one check's attempts need them."""

    deadline: float
    policy: ThrottleRetry
    sleep: Callable[[float], None]

    def pause_before_retry(self, state: _Running, error: BaseException, now: float) -> float | None:
        """Seconds to wait before retrying `error`, or None when it must not (or cannot) be retried."""
        if aws.error_code(error) != THROTTLED_CODE or state.throttled >= self.policy.attempts:
            return None
        pause = self.policy.pause(state.throttled, _retry_after(error))
        if now + pause + state.check.max_duration_ms / 1000 > self.deadline:
            return None  # no room for a whole check after the pause: report the throttle instead
        return pause


class _CheckRun:
    """One run of a list of checks: their futures, when each started, and the results so far."""

    def __init__(
        self,
        checks: Sequence[Check],
        invoke: Invoke,
        function: str,
        qualifier: str,
        expected_version: str | None,
        clock: Callable[[], float],
        retrying: _Retrying,
    ) -> None:
        self.states = [_Running(c) for c in checks]
        self.invoke = invoke
        self.function = function
        self.qualifier = qualifier
        self.expected_version = expected_version
        self.clock = clock
        self.retrying = retrying
        self.futures: dict[Future[_Outcome], int] = {}
        self.pending: set[Future[_Outcome]] = set()
        self._results: list[CheckResult | None] = [None] * len(checks)

    def submit_all(self, pool: ThreadPoolExecutor) -> None:
        self.futures = {pool.submit(self._attempt, state): i for i, state in enumerate(self.states)}
        self.pending = set(self.futures)

    def _attempt(self, state: _Running) -> _Outcome:
        """Invoke the check; a throttled invocation is retried while the policy and deadline allow."""
        while True:
            with state.lock:
                state.started = self.clock()
            try:
                invocation = self.invoke(self.function, self.qualifier, _encode(state.check.event))
            except Exception as exc:  # noqa: BLE001 - any invoke failure is this check's failure
                error = exc
            else:
                self._attempt_ended(state, throttled=False)
                return invocation, None
            self._attempt_ended(state, throttled=aws.error_code(error) == THROTTLED_CODE)
            pause = self.retrying.pause_before_retry(state, error, self.clock())
            if pause is None:
                return None, error
            with state.lock:
                # Between attempts nothing runs, so the check's own time limit is not ticking.
                state.started = None
            self.retrying.sleep(pause)

    def _attempt_ended(self, state: _Running, throttled: bool) -> None:
        with state.lock:
            state.finished = self.clock()
            if throttled:
                state.throttled += 1

    def next_wake(self, deadline: float) -> float:
        """Seconds until the deadline or the first running check's limit (polled at least every 50 ms)."""
        now = self.clock()
        expiries = [deadline]
        for fut in self.pending:
            state = self.states[self.futures[fut]]
            if state.started is not None:
                expiries.append(state.started + state.check.max_duration_ms / 1000)
        return max(0.0, min(min(expiries) - now, _POLL_SECONDS))

    def collect_answers(self, timeout: float) -> None:
        done, _ = wait(self.pending, timeout=timeout, return_when=FIRST_COMPLETED)
        for fut in done:
            self.pending.discard(fut)
            index = self.futures[fut]
            self._results[index] = _answered(self.states[index], fut.result(), self.expected_version)

    def fail_overrun(self) -> None:
        """Checks running longer than their own limit fail now; their threads are left behind."""
        now = self.clock()
        for fut in list(self.pending):
            index = self.futures[fut]
            state = self.states[index]
            limit_ms = state.check.max_duration_ms
            if state.started is not None and now - state.started > limit_ms / 1000:
                self.pending.discard(fut)
                self._results[index] = CheckResult(
                    state.check.name,
                    FAILED,
                    _ms(now - state.started),
                    error=f"no answer within the {limit_ms} ms limit",
                    throttled=state.throttled,
                )

    def fail_unanswered(self) -> None:
        """At the deadline: whatever has not answered (or not started) fails as out of time."""
        now = self.clock()
        for fut in self.pending:
            index = self.futures[fut]
            state = self.states[index]
            started = state.started
            self._results[index] = CheckResult(
                state.check.name,
                FAILED,
                _ms(now - started) if started is not None else 0,
                error=(
                    "the hook ran out of time while waiting for the answer"
                    if started is not None
                    else "not run: the hook ran out of time"
                ),
                throttled=state.throttled,
            )

    def results(self) -> list[CheckResult]:
        return [r for r in self._results if r is not None]


def _answered(
    state: _Running, outcome: tuple[Invocation | None, BaseException | None], expected_version: str | None
) -> CheckResult:
    with state.lock:
        started = state.started or 0.0
        finished = state.finished or started
        throttled = state.throttled
    duration_ms = _ms(finished - started)
    invocation, error = outcome
    if invocation is None:
        code = aws.error_code(error) if error else ""
        message = f"{code}: {error}" if code else f"{type(error).__name__}: {error}"
        tries = f"; throttled {throttled} times, retries stopped" if throttled else ""
        return CheckResult(
            state.check.name,
            FAILED,
            duration_ms,
            error=f"invoke failed ({excerpt(message, 200)}){tries}",
            throttled=throttled,
        )
    result = judge(state.check, invocation, duration_ms, expected_version)
    result.throttled = throttled
    return result


def _retry_after(error: BaseException) -> float | None:
    """Lambda's Retry-After header on a throttle (seconds), when it sent one."""
    response = getattr(error, "response", None) or {}
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    try:
        return float(headers["retry-after"])
    except (KeyError, TypeError, ValueError):
        return None


def _encode(event: Any) -> bytes:
    return json.dumps(event).encode("utf-8")


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))
