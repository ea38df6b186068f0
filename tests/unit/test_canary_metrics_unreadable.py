"""A canary figure CloudWatch could not return is unknown, never zero (fail closed).

GetMetricData answers each query with a StatusCode (Complete | InternalError | PartialData |
Forbidden) and, for InternalError or Forbidden, no values. Read as zero, an unreturned error count
would pass a version that erred on every call, and an unreturned invocation count would read as
"too little traffic to judge". The post-traffic hook fails instead, saying which figure was missing.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollout import aws, hooks
from rollout.appspec import LambdaAppSpec
from rollout.check_runner import SUCCEEDED

ALLOW_START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
AFTER_START = ALLOW_START + timedelta(minutes=6)


class _CloudWatch:
    """GetMetricData: Complete figures for everything but the new version's Errors query."""

    def __init__(self, broken: dict[str, str]) -> None:
        self.broken = broken  # query id -> StatusCode answered with no values

    def get_metric_data(self, **kwargs: Any) -> dict[str, Any]:
        figures = {
            "invocations_0": 200.0,  # new version: 200 calls through the alias ...
            "errors_0": 200.0,  # ... every one of them an error
            "throttles_0": 0.0,
            "duration_0": 100.0,
            "invocations_1": 1800.0,
            "errors_1": 0.0,
            "throttles_1": 0.0,
            "duration_1": 100.0,
        }
        results = []
        for query in kwargs["MetricDataQueries"]:
            qid = query["Id"]
            if qid in self.broken:
                results.append(
                    {
                        "Id": qid,
                        "Label": query["Label"],
                        "Timestamps": [],
                        "Values": [],
                        "StatusCode": self.broken[qid],
                        "Messages": [{"Code": "InternalError", "Value": "try again"}],
                    }
                )
            else:
                results.append(
                    {
                        "Id": qid,
                        "Label": query["Label"],
                        "Timestamps": [ALLOW_START],
                        "Values": [figures[qid]],
                        "StatusCode": "Complete",
                    }
                )
        return {"MetricDataResults": results}


def _deployment() -> hooks.Deployment:
    spec = LambdaAppSpec(
        function="orders-api",
        alias="live",
        current_version="1",
        target_version="2",
        before_allow_traffic="CodeDeployHook_rollout_PreTraffic",
        after_allow_traffic="CodeDeployHook_rollout_PostTraffic",
    )
    return hooks.Deployment("d-AUDIT0001", "rollout", "orders-api", spec, start_time=ALLOW_START)


def _events() -> list[dict[str, Any]]:
    return [
        {"lifecycleEventName": "AllowTraffic", "startTime": ALLOW_START, "endTime": AFTER_START},
        {"lifecycleEventName": "AfterAllowTraffic", "startTime": AFTER_START, "status": "InProgress"},
    ]


def _run(monkeypatch: pytest.MonkeyPatch, broken: dict[str, str]) -> hooks.HookOutcome:
    cloudwatch = _CloudWatch(broken)
    real = aws.client
    monkeypatch.setattr(
        aws, "client", lambda service: cloudwatch if service == "cloudwatch" else real(service)
    )

    def no_invoke(*_: Any) -> Any:
        raise AssertionError("no post-traffic checks: nothing is invoked")

    return hooks.evaluate_post_traffic(
        _deployment(),
        None,
        "test",
        no_invoke,
        hooks._Progress(),
        deadline=1e12,
        clock=lambda: 0.0,
        events=_events(),
    )


def test_with_every_figure_readable_a_version_erring_on_every_call_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The baseline for the cases below: the same figures, all returned."""
    outcome = _run(monkeypatch, {})
    assert outcome.verdict != SUCCEEDED


@pytest.mark.parametrize("status", ["InternalError", "Forbidden"])
def test_an_error_count_cloudwatch_could_not_return_never_passes_the_canary(
    monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    outcome = _run(monkeypatch, {"errors_0": status})
    assert outcome.verdict != SUCCEEDED, (
        f"the new version's Errors came back {status} with no values and were read as 0 errors: "
        f"{outcome.reason!r} / canary {outcome.canary}"
    )
    assert "canary could not be judged" in outcome.reason
    assert f"version 2's Errors (Sum): {status}" in outcome.reason


def test_an_invocation_count_cloudwatch_could_not_return_is_not_too_little_traffic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Read as 0, unreturned Invocations would be 'fewer than min_invocations: passed without judging'."""
    outcome = _run(monkeypatch, {"invocations_0": "InternalError", "errors_0": "InternalError"})
    assert outcome.verdict != SUCCEEDED, f"{outcome.reason!r} / warnings {outcome.warnings}"
    assert "version 2's Invocations (Sum): InternalError (try again)" in outcome.reason
