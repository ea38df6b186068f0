"""What the hook tests need around the hooks: a deployment with lifecycle times, a target function,
its per-version metrics, and a target whose answers are programmed.

- `LifecycleCodeDeploy` adds the deployment-target calls (ListDeploymentTargets, GetDeploymentTarget)
  to the CodeDeploy stand-in, with lifecycle event times the test sets.
- `teach_moto_percentiles` makes moto's GetMetricData answer `pNN` statistics (moto 5.2 returns
  nothing it can serialise for them); everything else about metric data stays moto's own.
- `ScriptedTarget` is the invoker handed to the hooks: moto without Docker runs no Lambda code,
  so the answers of the function under test are programmed per qualifier and check.
"""

from __future__ import annotations

import io
import json
import math
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from moto.cloudwatch import models as cloudwatch_models

from rollout.appspec import build_appspec, revision_for
from rollout.check_runner import Invocation
from tests.support.aws_stack import APPLICATION, POST_HOOK, PRE_HOOK, moto_client
from tests.support.codedeploy_standin import CodeDeployStandIn, client_error

TARGET_FUNCTION = "orders-api"
# Another team's CodeDeploy application whose deployments use this stack's hooks.
EXTERNAL_APPLICATION = "payments-app"
LIFECYCLE_ORDER = ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic")
ALIAS = "live"


class LifecycleCodeDeploy(CodeDeployStandIn):
    """The stand-in plus the Lambda deployment target with its lifecycle events."""

    def __init__(self) -> None:
        super().__init__()
        # deployment id -> lifecycle events as GetDeploymentTarget returns them
        self.lifecycle: dict[str, list[dict[str, Any]]] = {}
        # deployment id -> the lifecycle event in progress, for deployments given no times
        self.current_event: dict[str, str] = {}

    def at_event(self, deployment_id: str, name: str) -> None:
        """`name` is in progress (earlier events succeeded), with no times, unless times were set."""
        self.current_event[deployment_id] = name

    def _events(self, deployment_id: str) -> list[dict[str, Any]] | None:
        if deployment_id in self.lifecycle:
            return self.lifecycle[deployment_id]
        current = self.current_event.get(deployment_id)
        if current is None:
            return None
        order = LIFECYCLE_ORDER.index(current)
        statuses = ["Succeeded"] * order + ["InProgress"] + ["Pending"] * (len(LIFECYCLE_ORDER) - order - 1)
        return [
            {"lifecycleEventName": n, "status": st} for n, st in zip(LIFECYCLE_ORDER, statuses, strict=True)
        ]

    def set_lifecycle(
        self, deployment_id: str, times: dict[str, tuple[datetime | None, datetime | None]]
    ) -> None:
        events = []
        for name in LIFECYCLE_ORDER:
            start, end = times.get(name, (None, None))
            event: dict[str, Any] = {"lifecycleEventName": name, "status": "Pending"}
            if start:
                event["startTime"] = start
                event["status"] = "InProgress"
            if end:
                event["endTime"] = end
                event["status"] = "Succeeded"
            events.append(event)
        self.lifecycle[deployment_id] = events

    def _op_list_deployment_targets(self, deploymentId: str, **_: Any) -> dict[str, Any]:
        dep = self._deployment(deploymentId, "ListDeploymentTargets")
        return {"targetIds": [f"{dep.group}:{ALIAS}"]}

    def _op_get_deployment_target(self, deploymentId: str, targetId: str) -> dict[str, Any]:
        dep = self._deployment(deploymentId, "GetDeploymentTarget")
        events = self._events(deploymentId)
        if events is None:
            raise client_error("DeploymentTargetDoesNotExistException", "no target", "GetDeploymentTarget")
        return {
            "deploymentTarget": {
                "deploymentTargetType": "LambdaTarget",
                "lambdaTarget": {
                    "deploymentId": deploymentId,
                    "targetId": targetId,
                    "status": "InProgress",
                    "lifecycleEvents": events,
                    # The deployment group is named after the function it deploys (a Rollout rule).
                    "lambdaFunctionInfo": {"functionName": dep.group, "functionAlias": ALIAS},
                },
            }
        }


def start_deployment(
    codedeploy: CodeDeployStandIn,
    current: str = "1",
    target: str = "2",
    function: str = TARGET_FUNCTION,
    application: str = APPLICATION,
    description: str = "",
    pre_hook: str = PRE_HOOK,
) -> str:
    """A deployment of `function` from `current` to `target` whose AppSpec names both hooks."""
    if application not in codedeploy.applications:
        codedeploy.create_application(applicationName=application, computePlatform="Lambda")
    group = (application, function)
    if group not in codedeploy.groups:
        codedeploy.create_deployment_group(
            applicationName=application,
            deploymentGroupName=function,
            serviceRoleArn="arn:aws:iam::123456789012:role/rollout-test-codedeploy",
            deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        )
    appspec = build_appspec(function, ALIAS, current, target, pre_hook, POST_HOOK)
    return codedeploy.create_deployment(
        applicationName=application,
        deploymentGroupName=function,
        revision=revision_for(appspec),
        description=description,
    )["deploymentId"]


def create_target_function(role_arn: str, tags: dict[str, str] | None = None, versions: int = 2) -> None:
    """The function under test, with published versions, in moto's Lambda."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    client = moto_client("lambda")
    client.create_function(
        FunctionName=TARGET_FUNCTION,
        Runtime="python3.13",
        Role=role_arn,
        Handler="app.handler",
        Code={"ZipFile": buffer.getvalue()},
        Tags={"rollout:managed": "true", **(tags or {})},
    )
    for _ in range(versions):
        client.publish_version(FunctionName=TARGET_FUNCTION)


def put_invocations(
    version: str,
    at: datetime,
    count: int,
    errors: int = 0,
    duration_ms: float = 100.0,
    slow_ms: float | None = None,
    throttles: int = 0,
) -> None:
    """Emit the AWS/Lambda figures of `count` invocations of `version` through the alias at `at`."""
    dimensions = [
        {"Name": "FunctionName", "Value": TARGET_FUNCTION},
        {"Name": "Resource", "Value": f"{TARGET_FUNCTION}:{ALIAS}"},
        {"Name": "ExecutedVersion", "Value": version},
    ]
    data: list[dict[str, Any]] = []
    for i in range(count):
        stamp = at + timedelta(milliseconds=10 * i)
        # The slowest 2% answer in `slow_ms`: what a p99 sees.
        duration = (
            slow_ms if slow_ms is not None and i >= count - max(1, math.ceil(count * 0.02)) else duration_ms
        )
        data.append(_datum("Invocations", dimensions, 1.0, stamp, "Count"))
        data.append(_datum("Errors", dimensions, 1.0 if i < errors else 0.0, stamp, "Count"))
        data.append(_datum("Duration", dimensions, duration, stamp, "Milliseconds"))
    for i in range(throttles):
        data.append(_datum("Throttles", dimensions, 1.0, at + timedelta(milliseconds=i), "Count"))
    cloudwatch = moto_client("cloudwatch")
    for start in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data[start : start + 500])


def _datum(
    name: str, dimensions: list[dict[str, str]], value: float, at: datetime, unit: str
) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": dimensions, "Value": value, "Timestamp": at, "Unit": unit}


@pytest.fixture
def teach_moto_percentiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's GetMetricData knows Sum/Average/Min/Max/SampleCount only; add nearest-rank pNN."""
    original = cloudwatch_models.Statistics.get_statistics_for_type

    def get_statistics_for_type(self: Any, stat: str) -> Any:
        if stat.startswith("p"):
            try:
                percentile = float(stat[1:])
            except ValueError:
                percentile = -1.0
            if 0 < percentile <= 100:
                values = sorted(float(v) for v in self.metric_single_values_list)
                if not values:
                    return None
                rank = max(1, math.ceil(percentile / 100 * len(values)))
                return values[rank - 1]
        return original(self, stat)

    monkeypatch.setattr(cloudwatch_models.Statistics, "get_statistics_for_type", get_statistics_for_type)


# --- the function under test, as the hooks' invoker sees it --------------------------------------
@dataclass
class ScriptedTarget:
    """Answers per (qualifier, check event name); records every invocation.

    A behaviour is an Invocation, an exception to raise, ("delay", seconds, Invocation) or "hang"
    (blocks until `release()` or ten seconds).
    """

    answers: dict[tuple[str, str], Any] = field(default_factory=dict)
    calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    _released: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, qualifier: str, name: str, behaviour: Any) -> None:
        self.answers[(qualifier, name)] = behaviour

    def release(self) -> None:
        self._released.set()

    def __call__(self, function: str, qualifier: str, payload: bytes) -> Invocation:
        event = json.loads(payload)
        with self._lock:
            self.calls.append((function, qualifier, event))
        behaviour = self.answers.get((qualifier, str(event.get("name", ""))))
        if behaviour is None:
            raise client_error("ResourceNotFoundException", f"no answer for {qualifier}", "Invoke")
        if isinstance(behaviour, BaseException):
            raise behaviour
        if behaviour == "hang":
            self._released.wait(10)
            return ok(qualifier)
        if isinstance(behaviour, tuple) and behaviour[0] == "delay":
            time.sleep(behaviour[1])
            return behaviour[2]
        return behaviour


def ok(version: str, body: Any = None) -> Invocation:
    payload = {"statusCode": 200, "body": json.dumps(body if body is not None else {"ok": True})}
    return Invocation(json.dumps(payload).encode(), None, version)


def reply(version: str, payload: Any, function_error: str | None = None) -> Invocation:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Invocation(raw, function_error, version)


@pytest.fixture
def scripted_target() -> Iterator[ScriptedTarget]:
    target = ScriptedTarget()
    yield target
    target.release()


def minutes_ago(minutes: float) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes)
