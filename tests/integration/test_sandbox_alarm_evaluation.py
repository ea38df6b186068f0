"""The sandbox's alarm evaluator leaves an alarm unevaluated only when evaluating it would change nothing
(sandbox/alarms.py): after each of its passes, an evaluator that evaluates every alarm afresh finds
nothing to change, whatever happened in between (datapoints, time, manual states, updated, deleted and
recreated alarms)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from rollout.canary_alarms import CanaryScope, alarm_definitions
from sandbox import Sandbox, metrics
from sandbox.alarms import AlarmEvaluator
from tests.support.sandbox_support import client, queue

FUNCTIONS = ["fn-a", "fn-b", "fn-c"]


@pytest.fixture(scope="module")
def frozen() -> Iterator[tuple[Sandbox, list[float]]]:
    """A sandbox whose clock moves only when the test moves it, and whose evaluator runs only when asked."""
    with Sandbox(speed=60) as running:
        running.alarms.stop()
        now = [math.floor(running.clock.now() / 60) * 60 + 7.0]
        running.clock.now = lambda: now[0]  # type: ignore[method-assign]
        yield running, now


def alarms(sb: Sandbox, topic: str) -> list[dict[str, Any]]:
    """Every kind of alarm the evaluator judges: the product's canary alarms (metric math and a threshold),
    each way of treating missing data, several periods, a percentile, a unit, a custom metric."""
    made = []
    for function in FUNCTIONS:
        made += alarm_definitions("memo", CanaryScope(function, "live", "2"), {"max_error_rate": 0.2})
    plain = {
        "Namespace": "AWS/Lambda",
        "Dimensions": [{"Name": "FunctionName", "Value": FUNCTIONS[0]}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "ComparisonOperator": "GreaterThanThreshold",
    }
    for treat in ("missing", "ignore", "breaching", "notBreaching"):
        made.append(
            {
                **plain,
                "AlarmName": f"memo-{treat}",
                "MetricName": "Errors",
                "Statistic": "Sum",
                "Threshold": 0.0,
            }
            | {"TreatMissingData": treat, "AlarmActions": [topic], "OKActions": [topic]}
        )
    made.append(
        {
            **plain,
            "AlarmName": "memo-p90",
            "MetricName": "Duration",
            "ExtendedStatistic": "p90",
            "Threshold": 40.0,
        }
        | {"Period": 120, "EvaluationPeriods": 3, "DatapointsToAlarm": 2, "Unit": "Milliseconds"}
    )
    made.append(
        {
            "AlarmName": "memo-custom",
            "Namespace": "Rollout/Test",
            "MetricName": "Latency",
            "Dimensions": [{"Name": "Service", "Value": "checkout"}],
            "Statistic": "Average",
            "Period": 60,
            "EvaluationPeriods": 2,
            "Threshold": 500.0,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "ignore",
        }
    )
    return made


def shown(sb: Sandbox) -> dict[str, Any]:
    """What a user sees of every alarm: state, reason, reason data, history."""
    backend = metrics.backend(sb)
    return {
        name: (
            alarm.state_value,
            alarm.state_reason,
            alarm.state_reason_data,
            len(alarm.__dict__.get("_sandbox_history", [])),
        )
        for name, alarm in backend.alarms.items()
    }


def afresh(sb: Sandbox) -> AlarmEvaluator:
    """An evaluator that remembers nothing: it evaluates every alarm, as the sandbox always did."""
    fresh = AlarmEvaluator(sb)
    fresh.manual_until = dict(sb.alarms.manual_until)
    fresh._next_sqs_sample = math.inf  # it samples no queues: the sandbox's own evaluator does
    return fresh


@pytest.mark.parametrize("seed", range(6))
def test_an_alarm_left_unevaluated_would_not_have_changed(
    frozen: tuple[Sandbox, list[float]], seed: int
) -> None:
    sb, now = frozen
    rng = random.Random(seed)
    cloudwatch = client(sb, "cloudwatch")
    _, inbox = queue(sb, f"memo-inbox-{seed}")
    topic = client(sb, "sns").create_topic(Name=f"memo-{seed}")["TopicArn"]
    client(sb, "sns").subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox)
    definitions = alarms(sb, topic)
    for definition in definitions:
        cloudwatch.put_metric_alarm(**definition)
    changes = 0
    for _ in range(80):
        roll = rng.random()
        if roll < 0.4:
            for function in rng.sample(FUNCTIONS, rng.randint(1, 2)):
                for _ in range(rng.randint(1, 4)):
                    metrics.record_lambda(
                        sb,
                        function,
                        f"{function}:live",
                        "2",
                        error=rng.random() < 0.3,
                        duration_ms=rng.uniform(5, 80),
                    )
        elif roll < 0.6:
            # Now, or late: a datapoint for a period already judged (PutMetricData takes a Timestamp).
            late = rng.choice([0, 0, 30, 60, 90, 150])
            cloudwatch.put_metric_data(
                Namespace="Rollout/Test",
                MetricData=[
                    {
                        "MetricName": "Latency",
                        "Dimensions": [{"Name": "Service", "Value": "checkout"}],
                        "Value": rng.choice([100.0, 900.0]),
                        "Timestamp": datetime.fromtimestamp(now[0] - late, UTC),
                    }
                ],
            )
        elif roll < 0.66:
            name = rng.choice(definitions)["AlarmName"]
            cloudwatch.set_alarm_state(
                AlarmName=name, StateValue=rng.choice(["OK", "ALARM"]), StateReason="by hand"
            )
        elif roll < 0.71:
            definition = rng.choice(definitions)
            changed = {**definition, "Threshold": definition["Threshold"] + rng.choice([-0.1, 0.1, 1.0])}
            cloudwatch.put_metric_alarm(**changed)
        elif roll < 0.74:
            definition = rng.choice(definitions)
            cloudwatch.delete_alarms(AlarmNames=[definition["AlarmName"]])
            sb.alarms.evaluate_all()
            cloudwatch.put_metric_alarm(**definition)
        now[0] += rng.choice([0.0, 0.0, 3.0, 10.0, 30.0, 55.0, 60.0, 125.0])
        before = shown(sb)
        sb.alarms.evaluate_all()
        after = shown(sb)
        changes += before != after
        afresh(sb).evaluate_all()
        assert shown(sb) == after
    assert changes > 5  # the scenario moved alarms, so the comparison judged real evaluations


def test_an_alarm_on_a_lambda_metric_fires_only_once_lambda_has_published_the_datapoint(
    frozen: tuple[Sandbox, list[float]],
) -> None:
    """An alarm reads what CloudWatch has: an error of minute M is judged once Lambda has published
    minute M (metrics.LAMBDA_PUBLISH_LAG after it ends), as GetMetricData and GetMetricStatistics read it."""
    sb, now = frozen
    cloudwatch = client(sb, "cloudwatch")
    function = "fn-published"
    cloudwatch.put_metric_alarm(
        AlarmName="published-errors",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Dimensions=[{"Name": "FunctionName", "Value": function}],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0.0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    minute = now[0] - now[0] % 60 + 60
    now[0] = minute + 10
    metrics.record_lambda(sb, function, f"{function}:live", "1", error=True)

    def state_and_errors_at(moment: float) -> tuple[str, float]:
        now[0] = moment
        sb.alarms.evaluate_all()
        [alarm] = cloudwatch.describe_alarms(AlarmNames=["published-errors"])["MetricAlarms"]
        stats = cloudwatch.get_metric_statistics(
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Dimensions=[{"Name": "FunctionName", "Value": function}],
            StartTime=datetime.fromtimestamp(minute - 600, UTC),
            EndTime=datetime.fromtimestamp(moment + 600, UTC),
            Period=60,
            Statistics=["Sum"],
        )
        return alarm["StateValue"], sum(point["Sum"] for point in stats["Datapoints"])

    published = minute + 60 + metrics.LAMBDA_PUBLISH_LAG
    # The minute has ended (an alarm would judge it now if CloudWatch had its figures), but not yet
    # the publish lag after it.
    assert state_and_errors_at(minute + 61) == ("OK", 0)
    assert state_and_errors_at(published - 1) == ("OK", 0)
    assert state_and_errors_at(published) == ("ALARM", 1.0)
