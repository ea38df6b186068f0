"""The canary verdict and the traffic window, without AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollout.canary import CanaryPolicy, VersionFigures, judge_canary, traffic_window
from rollout.lambda_metrics import metric_queries, query_window

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
POLICY = CanaryPolicy()


def figures(version: str, invocations: int, errors: int = 0, p99: float | None = 100.0, throttles: int = 0):
    return VersionFigures(version, invocations, errors, throttles, p99)


def judge(new: VersionFigures, old: VersionFigures, policy: CanaryPolicy = POLICY):
    return judge_canary(new, old, policy, T0, T1)


def test_policy_defaults_and_overrides() -> None:
    assert CanaryPolicy.from_checks(None) == CanaryPolicy(0.01, 1.5, 20, True)
    custom = CanaryPolicy.from_checks(
        {"canary": {"max_error_rate": 0.05, "min_invocations": 3, "strict": False}}
    )
    assert custom == CanaryPolicy(0.05, 1.5, 3, False)


def test_equal_versions_pass() -> None:
    verdict = judge(figures("2", 100, 0, 120.0), figures("1", 900, 0, 120.0))
    assert verdict.passed
    assert verdict.failures == [] and verdict.warnings == []
    assert verdict.reason == "canary within thresholds"


def test_better_new_version_passes() -> None:
    verdict = judge(figures("2", 100, 0, 80.0), figures("1", 900, 45, 200.0))
    assert verdict.passed


def test_error_rate_above_threshold_and_worse_than_old_fails() -> None:
    verdict = judge(figures("2", 100, 5), figures("1", 900, 0))
    assert not verdict.passed
    assert "error rate of version 2 is 5.00% (5/100)" in verdict.reason
    assert "1.00% allowed" in verdict.reason


def test_error_rate_above_threshold_but_no_worse_than_old_passes() -> None:
    # The old version already fails as often: the release does not make things worse.
    verdict = judge(figures("2", 100, 5), figures("1", 1000, 80))
    assert verdict.passed


def test_error_rate_exactly_at_threshold_passes() -> None:
    assert judge(figures("2", 100, 1), figures("1", 100, 0)).passed


def test_p99_slower_than_ratio_fails() -> None:
    verdict = judge(figures("2", 100, 0, 301.0), figures("1", 900, 0, 200.0))
    assert not verdict.passed
    assert "p99 duration of version 2 is 301 ms, above 1.5 x version 1's 200 ms" in verdict.reason


def test_p99_at_ratio_passes() -> None:
    assert judge(figures("2", 100, 0, 300.0), figures("1", 900, 0, 200.0)).passed


def test_p99_ratio_on_millisecond_handlers_is_not_a_failure() -> None:
    # 1 ms against 0.4 ms is 2.5x, but no user notices 0.6 ms.
    verdict = judge(figures("2", 100, 0, 1.0), figures("1", 900, 0, 0.4))
    assert verdict.passed, verdict.failures


def test_fast_handler_that_slows_down_a_lot_still_fails() -> None:
    verdict = judge(figures("2", 100, 0, 40.0), figures("1", 900, 0, 2.0))
    assert not verdict.passed
    assert "p99 duration of version 2 is 40 ms" in verdict.failures[0]


def test_both_failures_are_reported() -> None:
    verdict = judge(figures("2", 100, 50, 900.0), figures("1", 900, 0, 100.0))
    assert len(verdict.failures) == 2


def test_too_little_data_is_inconclusive_and_fails_by_default() -> None:
    """Three calls prove nothing about a version: by default that is a "no", and the reason says how
    to get a verdict instead."""
    verdict = judge(figures("2", 3), figures("1", 900))
    assert not verdict.passed and verdict.to_record()["inconclusive"] is True
    assert verdict.reason.startswith("canary inconclusive: version 2 had 3 invocation(s)")
    assert "fewer than the 20 needed" in verdict.reason and "canary.strict to false" in verdict.reason


def test_too_little_data_passes_unjudged_only_when_strict_is_off_and_says_so() -> None:
    verdict = judge(figures("2", 3, 3), figures("1", 900), CanaryPolicy(strict=False))
    assert verdict.passed and verdict.failures == []
    assert "3 invocation(s)" in verdict.warnings[0] and "fewer than the 20" in verdict.warnings[0]
    # Never "within thresholds": nothing was judged.
    assert verdict.reason.startswith("canary inconclusive, passed unjudged (canary.strict is false)")


def test_no_baseline_duration_is_a_warning_not_a_failure() -> None:
    verdict = judge(figures("2", 100, 0, 500.0), figures("1", 0, 0, None))
    assert verdict.passed
    assert any("no p99 duration for version 1" in w for w in verdict.warnings)


def test_new_version_errors_with_no_old_traffic_fail() -> None:
    verdict = judge(figures("2", 50, 10), figures("1", 0, 0, None))
    assert not verdict.passed


def test_throttles_are_warned_about() -> None:
    verdict = judge(figures("2", 100, throttles=4), figures("1", 900))
    assert verdict.passed
    assert "throttled 4 time(s)" in verdict.warnings[0]


def test_record_carries_the_figures() -> None:
    record = judge(figures("2", 100, 5, 150.0), figures("1", 900, 0, 100.0)).to_record()
    assert record["verdict"] == "Failed"
    assert record["new"] == {
        "version": "2",
        "invocations": 100,
        "errors": 5,
        "throttles": 0,
        "p99_duration_ms": 150.0,
        "error_rate": 0.05,
    }
    assert record["window"] == {"start": "2026-03-01T12:00:00Z", "end": "2026-03-01T12:05:00Z"}


# --- the window ---------------------------------------------------------------------------------
def lifecycle(name: str, start: datetime | None, end: datetime | None = None) -> dict:
    event: dict = {"lifecycleEventName": name, "status": "InProgress"}
    if start:
        event["startTime"] = start
    if end:
        event["endTime"] = end
    return event


def test_window_from_lifecycle_events_ignores_the_local_clock() -> None:
    allow, after = T0 + timedelta(minutes=1), T0 + timedelta(minutes=7)
    events = [lifecycle("BeforeAllowTraffic", T0, allow), lifecycle("AllowTraffic", allow, after)]
    events.append(lifecycle("AfterAllowTraffic", after))
    # The local clock is far behind (the sandbox runs CodeDeploy faster): it must not matter.
    start, end, notes = traffic_window(events, T0, now=T0 - timedelta(hours=3))
    assert (start, end, notes) == (allow, after, [])


def test_window_falls_back_to_allow_traffic_end() -> None:
    allow, allow_end = T0 + timedelta(minutes=1), T0 + timedelta(minutes=6)
    start, end, _ = traffic_window([lifecycle("AllowTraffic", allow, allow_end)], T0, now=T0)
    assert (start, end) == (allow, allow_end)


def test_window_falls_back_to_deployment_start_then_now() -> None:
    now = T0 + timedelta(minutes=10)
    start, end, notes = traffic_window([], T0, now=now)
    assert (start, end) == (T0, now)
    assert len(notes) == 2


def test_window_is_at_least_a_minute_long() -> None:
    start, end, _ = traffic_window([], T0, now=T0 - timedelta(minutes=5))
    assert (start, end) == (T0, T0 + timedelta(minutes=1))


def test_window_accepts_naive_times_as_utc() -> None:
    naive = datetime(2026, 3, 1, 12, 1)
    start, _, _ = traffic_window([lifecycle("AllowTraffic", naive)], None, now=T1)
    assert start == T0 + timedelta(minutes=1)


def test_window_without_any_deployment_time() -> None:
    start, end, notes = traffic_window([], None, now=T1)
    assert (start, end) == (T1 - timedelta(minutes=1), T1)
    assert "no start time" in notes[0]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (
            T0 + timedelta(seconds=30),
            T0 + timedelta(minutes=4, seconds=1),
            (T0, T0 + timedelta(minutes=5), 300),
        ),
        (T0, T0 + timedelta(minutes=2), (T0, T0 + timedelta(minutes=2), 120)),
        (T0, T0, (T0, T0 + timedelta(minutes=1), 60)),
    ],
)
def test_query_window_covers_whole_minutes(start: datetime, end: datetime, expected: tuple) -> None:
    assert query_window(start, end) == expected


def test_metric_queries_are_by_executed_version_through_the_alias() -> None:
    queries = metric_queries("orders", "live", ["7", "6"], 300)
    assert len(queries) == 8
    p99_new = next(q for q in queries if q["Id"] == "duration_0")
    assert p99_new["MetricStat"]["Stat"] == "p99"
    assert p99_new["MetricStat"]["Metric"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": "orders"},
        {"Name": "Resource", "Value": "orders:live"},
        {"Name": "ExecutedVersion", "Value": "7"},
    ]
