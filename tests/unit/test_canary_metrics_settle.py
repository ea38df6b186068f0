"""The canary is judged on final figures, never on a window whose last minute CloudWatch lacks.

Lambda sends its metrics to CloudWatch a minute at a time, so when AfterAllowTraffic starts the
canary's last minute is not yet readable. A version that erred only in that minute read as clean: the
post-traffic hook waits until CloudWatch's own clock (the Date of its answers) says the window's
figures are final, and fails, saying why, when they are not final before its deadline.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from rollout import aws, hooks, lambda_metrics
from rollout.check_runner import SUCCEEDED
from tests.unit.test_canary_metrics_unreadable import _deployment as canary_deployment

ALLOW_START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AFTER_START = ALLOW_START + timedelta(minutes=6, seconds=10)
LAST_MINUTE = AFTER_START.replace(second=0)  # 12:06, the minute AfterAllowTraffic started in
# As the sandbox publishes them: a minute's figures a minute after it ends.
READABLE_FROM = LAST_MINUTE + timedelta(minutes=2)


class _DelayedCloudWatch:
    """GetMetricData on its own clock: the new version erred 150 times, all in the window's last
    minute, which CloudWatch returns only from READABLE_FROM on."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.reads: list[datetime] = []

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        self.reads.append(self.now)
        last_minute_in = self.now >= READABLE_FROM
        figures = {
            "invocations_0": 150.0 + (150.0 if last_minute_in else 0.0),
            "errors_0": 150.0 if last_minute_in else 0.0,
            "throttles_0": 0.0,
            "duration_0": 100.0,
            "invocations_1": 2700.0,
            "errors_1": 0.0,
            "throttles_1": 0.0,
            "duration_1": 100.0,
        }
        results = [
            {
                "Id": q["Id"],
                "Label": q["Label"],
                "Timestamps": [ALLOW_START],
                "Values": [figures[q["Id"]]],
                "StatusCode": "Complete",
            }
            for q in kwargs["MetricDataQueries"]
        ]
        headers = {"date": format_datetime(self.now, usegmt=True)}
        return {"MetricDataResults": results, "ResponseMetadata": {"HTTPHeaders": headers}}

    def sleep(self, seconds: float) -> None:
        """Time passes for CloudWatch as for the hook (as on AWS)."""
        self.now += timedelta(seconds=seconds)


def _run(
    monkeypatch: pytest.MonkeyPatch, cloudwatch: _DelayedCloudWatch, deadline_s: float
) -> hooks.HookOutcome:
    real = aws.client
    monkeypatch.setattr(
        aws, "client", lambda service: cloudwatch if service == "cloudwatch" else real(service)
    )
    deployment = canary_deployment()
    events = [
        {"lifecycleEventName": "AllowTraffic", "startTime": ALLOW_START, "endTime": AFTER_START},
        {"lifecycleEventName": "AfterAllowTraffic", "startTime": AFTER_START, "status": "InProgress"},
    ]
    started = cloudwatch.now

    def elapsed() -> float:
        return (cloudwatch.now - started).total_seconds()

    def no_invoke(*_: Any) -> Any:
        raise AssertionError("no post-traffic checks: nothing is invoked")

    return hooks.evaluate_post_traffic(
        deployment,
        None,
        "test",
        no_invoke,
        hooks._Progress(),
        deadline=deadline_s,
        clock=elapsed,
        events=events,
        sleep=cloudwatch.sleep,
    )


def test_a_version_that_erred_in_the_canarys_last_minute_fails_once_that_minute_is_readable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloudwatch = _DelayedCloudWatch(now=AFTER_START + timedelta(seconds=2))
    outcome = _run(monkeypatch, cloudwatch, deadline_s=280.0)

    assert outcome.verdict != SUCCEEDED, (
        f"judged on figures read at {cloudwatch.reads[0]:%H:%M:%S}, before the last minute was in: "
        f"{outcome.reason!r}"
    )
    assert "error rate of version 2 is 50.00% (150/300)" in outcome.reason
    judged_at = cloudwatch.reads[-1]
    assert judged_at >= LAST_MINUTE + timedelta(minutes=1) + lambda_metrics.METRICS_SETTLE
    assert len(cloudwatch.reads) <= 12, f"read {len(cloudwatch.reads)} times while waiting"


def test_figures_not_final_before_the_hooks_deadline_fail_the_canary_saying_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cloudwatch = _DelayedCloudWatch(now=AFTER_START + timedelta(seconds=2))
    outcome = _run(monkeypatch, cloudwatch, deadline_s=60.0)

    assert outcome.verdict != SUCCEEDED
    assert "canary could not be judged" in outcome.reason
    assert "not final before the hook's deadline" in outcome.reason
    assert cloudwatch.now - AFTER_START < timedelta(seconds=62)


def test_a_window_long_over_is_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    cloudwatch = _DelayedCloudWatch(now=AFTER_START + timedelta(hours=1))
    outcome = _run(monkeypatch, cloudwatch, deadline_s=280.0)

    assert len(cloudwatch.reads) == 1
    assert "error rate of version 2 is 50.00%" in outcome.reason
