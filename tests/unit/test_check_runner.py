"""The subset match, the verdict on one answer, and running checks concurrently within limits."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from rollout.check_runner import (
    FAILED,
    SUCCEEDED,
    Check,
    Invocation,
    ThrottleRetry,
    excerpt,
    judge,
    run_checks,
    subset_mismatch,
)


# --- subset match -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expected", "actual"),
    [
        ({"statusCode": 200}, {"statusCode": 200, "body": "ok", "headers": {}}),
        ({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}, "d": 3}),
        ({}, {"anything": True}),
        ([1, 2], [1, 2]),
        ("ok", "ok"),
        (200, 200.0),
        (None, None),
        ({"body": '{"ok": true}'}, {"body": '{"ok": true}'}),
        ({"flag": False}, {"flag": False}),
        ({"sizes": [1, {"n": 2}]}, {"sizes": [1.0, {"n": 2.0}]}),
    ],
)
def test_subset_matches(expected: Any, actual: Any) -> None:
    assert subset_mismatch(expected, actual) is None


@pytest.mark.parametrize(
    ("expected", "actual", "where"),
    [
        ({"statusCode": 200}, {"statusCode": 500}, "$.statusCode: expected 200, got 500"),
        ({"a": {"b": 1}}, {"a": {"c": 1}}, "$.a.b: missing"),
        ({"a": 1}, [1], "$: expected an object"),
        ([1, 2], [1, 2, 3], "$: expected [1, 2], got [1, 2, 3]"),
        ([{"a": 1}], [{"a": 1, "b": 2}], "$: expected"),
        ({"ok": True}, {"ok": 1}, "$.ok: expected true, got 1"),
        # Inside lists too: JSON's true is not 1, nor false 0.
        ({"flags": [True, False]}, {"flags": [1, 0]}, "$.flags: expected [true, false], got [1, 0]"),
        ([{"ok": True}], [{"ok": 1}], '$: expected [{"ok": true}], got [{"ok": 1}]'),
        ({"n": 1}, {"n": "1"}, '$.n: expected 1, got "1"'),
        # A JSON body is compared as the string it is.
        ({"body": {"ok": True}}, {"body": '{"ok": true}'}, "$.body: expected an object"),
    ],
)
def test_subset_mismatches_say_where(expected: Any, actual: Any, where: str) -> None:
    found = subset_mismatch(expected, actual)
    assert found is not None and found.startswith(where)


# --- judging one answer -------------------------------------------------------------------------
HEALTH = Check("health", {"path": "/health"}, 1000, {"statusCode": 200}, True)


def answer(payload: Any, function_error: str | None = None, version: str | None = None) -> Invocation:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Invocation(raw, function_error, version)


def test_matching_answer_succeeds() -> None:
    result = judge(HEALTH, answer({"statusCode": 200, "body": "fine"}), 12)
    assert (result.verdict, result.duration_ms, result.error, result.excerpt) == (SUCCEEDED, 12, "", "")


def test_function_error_fails_with_excerpt() -> None:
    payload = {"errorMessage": "boom", "errorType": "KeyError", "stackTrace": []}
    result = judge(HEALTH, answer(payload, "Unhandled"), 5)
    assert result.verdict == FAILED
    assert result.error == "function error (Unhandled)"
    assert '"errorMessage": "boom"' in result.excerpt


def test_mismatch_fails_with_where_and_excerpt() -> None:
    result = judge(HEALTH, answer({"statusCode": 503, "body": "down"}), 5)
    assert result.verdict == FAILED
    assert result.error == "response does not match expect: $.statusCode: expected 200, got 503"
    assert "503" in result.excerpt


def test_garbage_answer_fails_when_expect_is_given() -> None:
    result = judge(HEALTH, answer(b"<html>oops</html>"), 5)
    assert (result.verdict, result.error, result.excerpt) == (
        FAILED,
        "response is not JSON",
        "<html>oops</html>",
    )


def test_any_answer_passes_without_expect() -> None:
    check = Check("smoke", {}, 1000)
    assert judge(check, answer(b"not json at all"), 5).verdict == SUCCEEDED


def test_slow_answer_fails() -> None:
    result = judge(HEALTH, answer({"statusCode": 200}), 1500)
    assert result.verdict == FAILED
    assert result.error == "took 1500 ms, over the 1000 ms limit"


def test_answer_from_another_version_fails() -> None:
    result = judge(HEALTH, answer({"statusCode": 200}, version="3"), 5, expected_version="4")
    assert result.error == "answered by version 3, not version 4"


@pytest.mark.parametrize("probe", [False, True], ids=["check", "start probe"])
def test_an_answer_that_does_not_say_which_version_ran_proves_nothing_about_the_version(probe: bool) -> None:
    # Through the alias, only X-Amz-Executed-Version says the new version answered, not the old one.
    check = Check("probe", {}, 1000, probe=True) if probe else HEALTH
    result = judge(check, answer({"statusCode": 200}, version=None), 5, expected_version="4")
    assert (result.verdict, result.error) == (
        FAILED,
        "the answer does not name the version that ran (version 4 expected)",
    )


def test_excerpt_is_short_and_on_one_line() -> None:
    text = excerpt("line one\nline two " + "x" * 1000)
    assert len(text) == 300 and "\n" not in text and text.endswith("…")


def test_check_from_spec() -> None:
    check = Check.from_spec({"name": "a", "event": {"x": 1}, "max_duration_ms": 250})
    assert (check.name, check.event, check.max_duration_ms, check.has_expect) == ("a", {"x": 1}, 250, False)
    assert Check.from_spec({"name": "b", "event": {}, "expect": None}).has_expect


# --- running ------------------------------------------------------------------------------------
class ScriptedTarget:
    """An invoker whose answer per check name is programmed; records what it was asked."""

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.calls: list[tuple[str, str, dict]] = []
        self.active = 0
        self.most_active = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __call__(self, function: str, qualifier: str, payload: bytes) -> Invocation:
        event = json.loads(payload)
        with self.lock:
            self.calls.append((function, qualifier, event))
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            behaviour = self.answers[event["name"]]
            if isinstance(behaviour, BaseException):
                raise behaviour
            if behaviour == "hang":
                self.release.wait(10)
                return answer({"statusCode": 200})
            if isinstance(behaviour, tuple) and behaviour[0] == "delay":
                time.sleep(behaviour[1])
                return answer({"statusCode": 200})
            return behaviour
        finally:
            with self.lock:
                self.active -= 1


def named(name: str, limit_ms: int = 2000, expect: Any = None) -> Check:
    return Check(name, {"name": name}, limit_ms, expect if expect is not None else {"statusCode": 200}, True)


def far() -> float:
    return time.monotonic() + 30


def test_runs_every_check_against_the_qualifier_in_order() -> None:
    target = ScriptedTarget({"a": answer({"statusCode": 200}), "b": answer({"statusCode": 500})})
    results = run_checks([named("a"), named("b")], target, "orders", "7", far())
    assert [(r.name, r.verdict) for r in results] == [("a", SUCCEEDED), ("b", FAILED)]
    assert sorted((f, q) for f, q, _ in target.calls) == [("orders", "7"), ("orders", "7")]


def test_no_checks_run_nothing() -> None:
    target = ScriptedTarget({})
    assert run_checks([], target, "orders", "7", far()) == []
    assert target.calls == []


def test_concurrency_is_bounded() -> None:
    names = [f"c{i}" for i in range(6)]
    target = ScriptedTarget(dict.fromkeys(names, ("delay", 0.1)))
    results = run_checks([named(n) for n in names], target, "orders", "7", far(), max_concurrency=2)
    assert all(r.passed for r in results)
    assert target.most_active == 2


def test_invoke_error_fails_the_check() -> None:
    missing = ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no v9"}}, "Invoke")
    results = run_checks([named("a")], ScriptedTarget({"a": missing}), "orders", "9", far())
    assert results[0].verdict == FAILED
    assert results[0].error.startswith("invoke failed (ResourceNotFoundException:")


def test_a_hanging_target_fails_at_its_limit_without_holding_the_others() -> None:
    target = ScriptedTarget({"slow": "hang", "quick": answer({"statusCode": 200})})
    started = time.monotonic()
    try:
        results = run_checks([named("slow", limit_ms=200), named("quick")], target, "orders", "7", far())
    finally:
        target.release.set()
    elapsed = time.monotonic() - started
    assert [(r.name, r.verdict) for r in results] == [("slow", FAILED), ("quick", SUCCEEDED)]
    assert results[0].error == "no answer within the 200 ms limit"
    assert 200 <= results[0].duration_ms < 1000
    assert elapsed < 2


def test_the_deadline_stops_all_waiting() -> None:
    target = ScriptedTarget({"a": "hang", "b": "hang", "c": "hang"})
    try:
        results = run_checks(
            [named(n, limit_ms=20_000) for n in "abc"],
            target,
            "orders",
            "7",
            time.monotonic() + 0.3,
            max_concurrency=2,
        )
    finally:
        target.release.set()
    assert [r.verdict for r in results] == [FAILED] * 3
    errors = sorted(r.error for r in results)
    assert errors == [
        "not run: the hook ran out of time",
        "the hook ran out of time while waiting for the answer",
        "the hook ran out of time while waiting for the answer",
    ]


# --- throttled invocations ----------------------------------------------------------------------
def throttle(retry_after: str | None = None) -> ClientError:
    headers = {"retry-after": retry_after} if retry_after is not None else {}
    return ClientError(
        {
            "Error": {"Code": "TooManyRequestsException", "Message": "Rate Exceeded."},
            "ResponseMetadata": {"HTTPStatusCode": 429, "HTTPHeaders": headers},
        },
        "Invoke",
    )


class Answers:
    """An invoker that plays a list of outcomes in order (an exception is raised), counting calls."""

    def __init__(self, *outcomes: Invocation | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, function: str, qualifier: str, payload: bytes) -> Invocation:
        outcome = self.outcomes[min(self.calls, len(self.outcomes) - 1)]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


QUICK_RETRY = ThrottleRetry(attempts=4, first_pause=0.01, max_pause=0.02)


def test_a_throttled_check_is_retried_until_it_runs() -> None:
    target = Answers(throttle(), throttle(), answer({"statusCode": 200}))
    pauses: list[float] = []
    results = run_checks(
        [named("a")], target, "orders", "7", far(), throttle_retry=QUICK_RETRY, sleep=pauses.append
    )
    assert results[0].verdict == SUCCEEDED and results[0].throttled == 2
    assert results[0].to_record()["throttled"] == 2
    assert target.calls == 3
    # Jittered, growing, bounded: half to all of 10 ms, then of 20 ms.
    assert 0.005 <= pauses[0] <= 0.01 and 0.01 <= pauses[1] <= 0.02


@pytest.mark.parametrize(
    "error",
    [
        ClientError({"Error": {"Code": "ServiceException", "Message": "boom"}}, "Invoke"),
        ClientError({"Error": {"Code": "EC2ThrottledException", "Message": "ENI"}}, "Invoke"),
        ClientError({"Error": {"Code": "ResourceConflictException", "Message": "pending"}}, "Invoke"),
        TimeoutError("read timed out"),
    ],
)
def test_an_error_after_which_the_check_may_have_run_is_never_retried(error: BaseException) -> None:
    target = Answers(error, answer({"statusCode": 200}))
    results = run_checks(
        [named("a")], target, "orders", "7", far(), throttle_retry=QUICK_RETRY, sleep=lambda _: None
    )
    assert target.calls == 1
    assert results[0].verdict == FAILED and results[0].throttled == 0


def test_throttling_that_persists_fails_the_check_after_the_last_attempt() -> None:
    target = Answers(throttle())
    results = run_checks(
        [named("a")], target, "orders", "7", far(), throttle_retry=QUICK_RETRY, sleep=lambda _: None
    )
    assert target.calls == QUICK_RETRY.attempts
    assert results[0].verdict == FAILED
    assert results[0].error.startswith("invoke failed (TooManyRequestsException:")
    assert results[0].error.endswith(f"throttled {QUICK_RETRY.attempts} times, retries stopped")


def test_no_retry_when_a_whole_check_no_longer_fits_before_the_deadline() -> None:
    target = Answers(throttle(), answer({"statusCode": 200}))
    # 3 s check limit, 1 s left: a retry could not finish in time, so the throttle is the verdict.
    results = run_checks(
        [named("a", limit_ms=3000)],
        target,
        "orders",
        "7",
        time.monotonic() + 1.0,
        throttle_retry=QUICK_RETRY,
        sleep=lambda _: None,
    )
    assert target.calls == 1 and results[0].verdict == FAILED and results[0].throttled == 1


def test_lambdas_retry_after_is_the_shortest_pause() -> None:
    target = Answers(throttle(retry_after="0.05"), answer({"statusCode": 200}))
    pauses: list[float] = []
    results = run_checks(
        [named("a")], target, "orders", "7", far(), throttle_retry=QUICK_RETRY, sleep=pauses.append
    )
    assert results[0].passed and pauses == [0.05]


def test_time_spent_throttled_does_not_count_against_the_checks_own_limit() -> None:
    target = Answers(throttle(), throttle(), answer({"statusCode": 200}))
    # Each pause (0.15 s) is longer than the check's limit (100 ms); only the answered call is timed.
    slow_pauses = ThrottleRetry(attempts=3, first_pause=0.15, max_pause=0.15)
    results = run_checks(
        [named("a", limit_ms=100)], target, "orders", "7", far(), throttle_retry=slow_pauses, sleep=time.sleep
    )
    assert results[0].verdict == SUCCEEDED, results[0].error


def test_a_probe_error_that_names_no_type_cannot_prove_the_version_started() -> None:
    from rollout.check_runner import PROBE_EVENT, PROBE_NAME, judge_probe

    probe = Check(PROBE_NAME, PROBE_EVENT, probe=True)

    unreadable = judge_probe(probe, Invocation(b"<html>bad gateway</html>", "Unhandled", "3"), 5, "3")
    handler_ran = judge_probe(
        probe, Invocation(b'{"errorType": "KeyError", "errorMessage": "path"}', "Unhandled", "3"), 5, "3"
    )

    assert (unreadable.verdict, unreadable.error) == (
        "Failed",
        "the version cannot start (Unhandled with no errorType)",
    )
    assert handler_ran.verdict == "Succeeded"
