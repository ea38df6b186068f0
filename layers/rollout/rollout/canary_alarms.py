"""Per-release canary alarms: scoped to the new version, so an alarm already firing for the old
version never blocks the release that fixes it.

Both alarms watch `AWS/Lambda` metrics with dimensions FunctionName, Resource=`fn:alias` and
ExecutedVersion=<target>, which Lambda emits for invocations through the alias: exactly the canary
traffic CodeDeploy shifts. They are named `<prefix>-<function>-v<version>-<metric>` and deleted when
the release ends.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from rollout import aws
from rollout.checks import CANARY_DEFAULTS
from rollout.targets import is_builtin_config

PERIOD_SECONDS = 60
# A burst of errors in one minute fails the canary whatever the traffic (the rate alarm needs a
# minimum sample, which low-traffic functions may never reach).
ERRORS_PER_MINUTE_LIMIT = 5
DESCRIBE_BATCH = 100  # DescribeAlarms/DeleteAlarms take at most 100 names
# "Lambda sends metric data to CloudWatch in 1-minute intervals" (AWS Lambda Developer Guide, "Using
# CloudWatch metrics with Lambda"), and a CloudWatch alarm judges only the datapoints CloudWatch has: an
# invocation's error reaches the canary alarms a minute after its minute ends at the soonest (no bound is
# documented; the local sandbox models this one, sandbox/metrics.py LAMBDA_PUBLISH_LAG).
LAMBDA_PUBLISH_SECONDS = 60
# The first traffic step of each built-in Lambda configuration, in minutes (CodeDeploy user guide,
# "Deployment configurations on an AWS Lambda compute platform"); AllAtOnce has no step.
BUILTIN_FIRST_STEP_MINUTES = {
    "CodeDeployDefault.LambdaCanary10Percent5Minutes": 5,
    "CodeDeployDefault.LambdaCanary10Percent10Minutes": 10,
    "CodeDeployDefault.LambdaCanary10Percent15Minutes": 15,
    "CodeDeployDefault.LambdaCanary10Percent30Minutes": 30,
    "CodeDeployDefault.LambdaLinear10PercentEvery1Minute": 1,
    "CodeDeployDefault.LambdaLinear10PercentEvery2Minutes": 2,
    "CodeDeployDefault.LambdaLinear10PercentEvery3Minutes": 3,
    "CodeDeployDefault.LambdaLinear10PercentEvery10Minutes": 10,
}


def alarm_name(prefix: str, function: str, version: str, metric: str) -> str:
    return f"{prefix}-{function}-v{version}-{metric}"


class CanaryScope(NamedTuple):
    function: str
    alias: str
    version: str

    @property
    def dimensions(self) -> list[dict[str, str]]:
        return [
            {"Name": "FunctionName", "Value": self.function},
            {"Name": "Resource", "Value": f"{self.function}:{self.alias}"},
            {"Name": "ExecutedVersion", "Value": self.version},
        ]


def alarm_definitions(prefix: str, scope: CanaryScope, canary: dict[str, Any] | None) -> list[dict[str, Any]]:
    """PutMetricAlarm parameters for the release's canary alarms (pure)."""
    thresholds = {**CANARY_DEFAULTS, **(canary or {})}
    max_error_rate = float(thresholds["max_error_rate"])
    min_invocations = int(thresholds["min_invocations"])
    target = f"{scope.function}:{scope.alias} v{scope.version}"

    def metric(metric_id: str, name: str) -> dict[str, Any]:
        return {
            "Id": metric_id,
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": scope.dimensions},
                "Period": PERIOD_SECONDS,
                "Stat": "Sum",
            },
            "ReturnData": False,
        }

    error_rate = {
        "AlarmName": alarm_name(prefix, scope.function, scope.version, "error-rate"),
        "AlarmDescription": (
            f"Rollout canary: error rate of {target} above {max_error_rate:g} "
            f"(counted once a minute has at least {min_invocations} invocations)"
        ),
        "Metrics": [
            metric("errors", "Errors"),
            metric("invocations", "Invocations"),
            {
                "Id": "rate",
                "Expression": f"IF(invocations >= {max(min_invocations, 1)}, errors / invocations, 0)",
                "Label": "error rate",
                "ReturnData": True,
            },
        ],
        "Threshold": max_error_rate,
        "ComparisonOperator": "GreaterThanThreshold",
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "notBreaching",
    }
    errors_threshold = 1 if max_error_rate == 0 else ERRORS_PER_MINUTE_LIMIT
    errors = {
        "AlarmName": alarm_name(prefix, scope.function, scope.version, "errors"),
        "AlarmDescription": f"Rollout canary: {errors_threshold} or more errors in a minute on {target}",
        "Namespace": "AWS/Lambda",
        "MetricName": "Errors",
        "Dimensions": scope.dimensions,
        "Statistic": "Sum",
        "Period": PERIOD_SECONDS,
        "Threshold": float(errors_threshold),
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "TreatMissingData": "notBreaching",
    }
    return [error_rate, errors]


def seconds_to_fire(definitions: list[dict[str, Any]]) -> int:
    """The least time after an error's minute begins before every canary alarm could be in ALARM: Lambda
    publishes the minute a lag after it ends, and an alarm needs DatapointsToAlarm periods in ALARM."""
    return LAMBDA_PUBLISH_SECONDS + max(
        int(_period(d)) * int(d.get("DatapointsToAlarm") or d["EvaluationPeriods"]) for d in definitions
    )


def _period(definition: dict[str, Any]) -> int:
    if "Period" in definition:
        return int(definition["Period"])
    return min(int(m["MetricStat"]["Period"]) for m in definition["Metrics"] if "MetricStat" in m)


def first_step_seconds(config: str, traffic_routing: dict[str, Any] | None) -> int | None:
    """How long a deployment configuration keeps its first traffic step before it shifts further (a
    built-in by name, a custom one by its TrafficRoutingConfig); None when all traffic moves at once."""
    if is_builtin_config(config):
        minutes = BUILTIN_FIRST_STEP_MINUTES.get(config)
        return None if minutes is None else minutes * 60
    routing = traffic_routing or {}
    kind = routing.get("type")
    if kind == "TimeBasedCanary":
        return int(routing["timeBasedCanary"]["canaryInterval"]) * 60
    if kind == "TimeBasedLinear":
        return int(routing["timeBasedLinear"]["linearInterval"]) * 60
    return None


def step_outruns_alarms(config: str, first_step: int | None, to_fire: int) -> str:
    """The operator's warning when the canary alarms cannot stop a deployment before its first traffic
    step ends ("" when they can, or when all traffic moves at once). The post-traffic canary analysis
    still judges the version, so this warns; it does not refuse."""
    if first_step is None or first_step > to_fire:
        return ""
    return (
        f"deployment config {config} moves more traffic to the new version after {first_step} s, before "
        f"its canary alarms can fire (at least {to_fire} s: Lambda's metrics reach CloudWatch "
        f"{LAMBDA_PUBLISH_SECONDS} s after each minute ends, then the alarms need their periods in "
        "breach), so they cannot stop it during that step; the post-traffic canary analysis still judges "
        f"the version. A first step longer than {to_fire} s (e.g. Canary10Percent5Minutes) lets them"
    )


def put_canary_alarms(prefix: str, scope: CanaryScope, canary: dict[str, Any] | None) -> list[str]:
    """Create (or overwrite: PutMetricAlarm is an upsert) the release's alarms; return their names."""
    cloudwatch = aws.client("cloudwatch")
    names = []
    for definition in alarm_definitions(prefix, scope, canary):
        cloudwatch.put_metric_alarm(**definition)
        names.append(definition["AlarmName"])
    return names


def delete_alarms(names: list[str]) -> None:
    """Delete the named alarms; names that no longer exist are fine (safe to call twice)."""
    cloudwatch = aws.client("cloudwatch")
    wanted = sorted(set(filter(None, names)))
    for start in range(0, len(wanted), DESCRIBE_BATCH):
        batch = wanted[start : start + DESCRIBE_BATCH]
        # DeleteAlarms fails as a whole on a missing name, so delete only the ones that exist.
        for _ in range(3):
            existing = _existing(cloudwatch, batch)
            if not existing:
                break
            try:
                cloudwatch.delete_alarms(AlarmNames=existing)
                break
            except Exception as exc:
                # ResourceNotFound: another caller deleted one in between, so look again.
                if aws.error_code(exc) != "ResourceNotFound":
                    raise


def _existing(cloudwatch: Any, names: list[str]) -> list[str]:
    found: list[str] = []
    kwargs: dict[str, Any] = {"AlarmNames": names, "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
    while True:
        resp = cloudwatch.describe_alarms(**kwargs)
        found.extend(a["AlarmName"] for a in resp.get("MetricAlarms", []))
        found.extend(a["AlarmName"] for a in resp.get("CompositeAlarms", []))
        if not resp.get("NextToken"):
            return found
        kwargs["NextToken"] = resp["NextToken"]


def alarms_in_alarm(names: list[str]) -> list[str]:
    """Which of `names` CloudWatch reports in ALARM now (metric and composite alarms)."""
    if not names:
        return []
    resp = aws.client("cloudwatch").describe_alarms(AlarmNames=names[:DESCRIBE_BATCH], StateValue="ALARM")
    return [a["AlarmName"] for a in resp.get("MetricAlarms", []) + resp.get("CompositeAlarms", [])]


def alarms_firing(names: list[str]) -> list[str]:
    """Which of `names` are in ALARM now (`alarm_states`)."""
    return [name for name, state in alarm_states(names).items() if state == "ALARM"]


def alarm_states(names: list[str]) -> dict[str, str]:
    """Each of `names` that exists, with its StateValue; a name missing from the answer does not
    exist. DescribeAlarms answers an unknown name with no entry rather than an error
    (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html:
    AlarmNames filters the alarms returned), so the caller must compare. Pre-flight: a wrong "firing"
    holds a release, so each alarm's own state is read rather than trusted to a filter some
    implementations, moto's among them, ignore when AlarmNames is given."""
    states: dict[str, str] = {}
    cloudwatch = aws.client("cloudwatch")
    wanted = sorted(set(filter(None, names)))
    for start in range(0, len(wanted), DESCRIBE_BATCH):
        kwargs: dict[str, Any] = {
            "AlarmNames": wanted[start : start + DESCRIBE_BATCH],
            "AlarmTypes": ["MetricAlarm", "CompositeAlarm"],
        }
        resp = cloudwatch.describe_alarms(**kwargs)
        for alarm in resp.get("MetricAlarms", []) + resp.get("CompositeAlarms", []):
            if alarm.get("AlarmName") in wanted:
                states[str(alarm["AlarmName"])] = str(alarm.get("StateValue") or "")
    return states
