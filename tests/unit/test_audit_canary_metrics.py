"""Audit (fail open): the canary analysis reads a metric CloudWatch could not return as zero.

GetMetricData answers each query with a StatusCode (Complete | InternalError | PartialData |
Forbidden) and, for InternalError, no values. `lambda_metrics.read_version_figures` ignores the
status and sums whatever values came back, so an error count CloudWatch failed to return reads as
"0 errors" and the post-traffic hook reports Succeeded for a version that erred on every call.

These tests fail by design until the product code treats an incomplete result as unreadable.
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


def test_control_every_call_an_error_fails_the_canary(monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: with every figure readable the 100 % error rate fails (passes on current code)."""
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


def test_an_invocation_count_cloudwatch_could_not_return_is_not_too_little_traffic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unreadable Invocations read as 0, i.e. 'fewer than min_invocations: passed without judging'."""
    outcome = _run(monkeypatch, {"invocations_0": "InternalError", "errors_0": "InternalError"})
    assert outcome.verdict != SUCCEEDED, f"{outcome.reason!r} / warnings {outcome.warnings}"
