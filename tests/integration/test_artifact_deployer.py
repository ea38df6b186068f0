"""The artifact deployer end to end against moto and the CodeDeploy stand-in, through its handler."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
import pytest

from functions.artifact_deployer.app import lambda_handler
from rollout import aws, codedeploy_ops, lambda_ops
from rollout.appspec import parse_appspec
from rollout.config import Settings
from rollout.ledger import Ledger, Release
from rollout.release_queue import finish_release
from rollout.starter import start_release
from rollout.states import State
from rollout.transitions import ReleaseContext
from tests.support.artifacts_world import (
    ArtifactWorld,
    Uploaded,
    eventbridge_event,
    function_zip,
    s3_record_event,
)
from tests.support.aws_limits import LimitViolations
from tests.support.aws_stack import APPLICATION, LEDGER_TABLE, POST_HOOK, PRE_HOOK, REGION, StackUnderTest
from tests.support.codedeploy_standin import CodeDeployStandIn, client_error

FUNCTION = "orders"


@pytest.fixture
def world(stack: StackUnderTest) -> ArtifactWorld:
    return ArtifactWorld(stack)


@pytest.fixture
def ledger(stack: StackUnderTest) -> Ledger:
    return Ledger(LEDGER_TABLE)


def deliver(event: dict[str, Any], lambda_context: Any) -> list[dict[str, Any]]:
    return lambda_handler(event, lambda_context)["results"]


def release_upload(world: ArtifactWorld, build: str, lambda_context: Any, **kwargs: Any) -> dict[str, Any]:
    return release_upload_key(world, f"{FUNCTION}/build-{build}.zip", lambda_context, build, **kwargs)


def release_upload_key(
    world: ArtifactWorld, key: str, lambda_context: Any, build: str = "k", **kwargs: Any
) -> dict[str, Any]:
    uploaded = world.upload(key, function_zip(build, **kwargs))
    (result,) = deliver(eventbridge_event(uploaded), lambda_context)
    return result


def only_release(ledger: Ledger, function: str = FUNCTION) -> Release:
    (release,) = ledger.releases(function)
    return release


@pytest.fixture
def bootstrapped(world: ArtifactWorld, stack: StackUnderTest, lambda_context: Any) -> dict[str, Any]:
    """A managed function whose first release created its alias on version 1."""
    world.create_alarms("orders-5xx", "orders-latency")
    world.create_function(FUNCTION, {"rollout:alarms": "orders-5xx orders-latency"})
    result = release_upload(world, "1", lambda_context)
    assert result["state"] == "BOOTSTRAPPED"
    stack.notifications()  # read past the bootstrap notification
    stack.received.clear()
    return result


# --- first release, normal release, unchanged ---------------------------------------------------


def test_first_release_creates_the_alias_on_the_new_version(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
) -> None:
    world.create_function(FUNCTION)
    uploaded = world.upload(
        f"{FUNCTION}/build-1.zip",
        function_zip("1"),
        metadata={"commit": "3f2a9c1", "author": "ana", "message": "first cut"},
    )

    (result,) = deliver(eventbridge_event(uploaded), lambda_context)

    assert result["state"] == "BOOTSTRAPPED"
    assert world.alias_version(FUNCTION) == result["target_version"] == "1"
    release = only_release(ledger)
    assert release.state == State.BOOTSTRAPPED
    assert (release.commit, release.author, release.message) == ("3f2a9c1", "ana", "first cut")
    assert release.object_version == uploaded.version_id
    assert release.code_sha256
    assert release.checks == {
        "pre_traffic": [],
        "post_traffic": [],
        "canary": {
            "max_error_rate": 0.01,
            "max_p99_duration_ratio": 1.5,
            "min_invocations": 20,
            "strict": True,
        },
        "probe": True,
    }
    (note,) = stack.notifications()
    assert note["kind"] == "release.bootstrapped"
    assert note["commit"] == "3f2a9c1"
    assert note["_attributes"] == {"kind": "release.bootstrapped", "function": FUNCTION, "severity": "info"}
    assert codedeploy.calls_to("create_deployment") == []


def test_new_code_starts_a_canary_deployment_with_the_appspec_and_alarms(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    checks = {
        "pre_traffic": [{"name": "health", "event": {"path": "/health"}, "expect": {"statusCode": 200}}]
    }
    result = release_upload(world, "2", lambda_context, checks=checks)

    assert result["state"] == "DEPLOYING"
    release = ledger.get(FUNCTION, result["release_id"])
    assert release is not None
    assert (release.current_version, release.target_version) == ("1", "2")
    assert release.deployment_id == result["deployment_id"]
    assert release.deployment_id.startswith("d-")
    assert release.checks is not None
    assert release.checks["pre_traffic"][0]["name"] == "health"
    assert release.checks["pre_traffic"][0]["max_duration_ms"] == 3000

    (call,) = codedeploy.calls_to("create_deployment")
    assert call["applicationName"] == APPLICATION
    assert call["deploymentGroupName"] == FUNCTION
    assert call["deploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    spec = parse_appspec(call["revision"]["appSpecContent"]["content"])
    assert (spec.function, spec.alias, spec.current_version, spec.target_version) == (
        FUNCTION,
        "live",
        "1",
        "2",
    )
    assert (spec.before_allow_traffic, spec.after_allow_traffic) == (PRE_HOOK, POST_HOOK)

    group = codedeploy.groups[(APPLICATION, FUNCTION)]
    alarm_names = sorted(a["name"] for a in group["alarmConfiguration"]["alarms"])
    assert alarm_names == sorted([*release.alarms, "orders-5xx", "orders-latency"])
    assert group["alarmConfiguration"]["enabled"] is True
    assert set(group["autoRollbackConfiguration"]["events"]) == {
        "DEPLOYMENT_FAILURE",
        "DEPLOYMENT_STOP_ON_ALARM",
        "DEPLOYMENT_STOP_ON_REQUEST",
    }
    assert group["serviceRoleArn"] == stack.codedeploy_role_arn

    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    alarms = cloudwatch.describe_alarms(AlarmNames=release.alarms)["MetricAlarms"]
    assert sorted(a["AlarmName"] for a in alarms) == sorted(
        ["rollout-test-canary-orders-v2-error-rate", "rollout-test-canary-orders-v2-errors"]
    )
    errors_alarm = next(a for a in alarms if a["AlarmName"].endswith("-errors"))
    assert {d["Name"]: d["Value"] for d in errors_alarm["Dimensions"]} == {
        "FunctionName": FUNCTION,
        "Resource": f"{FUNCTION}:live",
        "ExecutedVersion": "2",
    }

    lock = ledger.get_lock(FUNCTION)
    assert lock is not None
    assert (lock["release_id"], lock["deployment_id"]) == (release.release_id, release.deployment_id)
    (note,) = stack.notifications()
    assert note["kind"] == "deployment.started"
    assert note["deployment_id"] == release.deployment_id
    assert note["versions"] == {"current": "1", "target": "2"}


@pytest.mark.parametrize("unset", ["PRE_TRAFFIC_HOOK", "POST_TRAFFIC_HOOK"])
def test_without_both_hooks_configured_nothing_is_deployed_untested(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    unset: str,
) -> None:
    """The AppSpec names the hooks from the function's environment: without one, CodeDeploy would shift
    traffic with nothing to test that step."""
    monkeypatch.setenv(unset, "")

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "FAILED"
    assert unset in result["reason"]
    assert codedeploy.calls_to("create_deployment") == []
    assert world.published_versions(FUNCTION) == ["1"] and world.alias_version(FUNCTION) == "1"
    assert ledger.get_lock(FUNCTION) is None


def test_a_second_release_reuses_the_group_without_updating_it_needlessly(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    first = release_upload(world, "2", lambda_context)
    codedeploy.finish(first["deployment_id"], "Succeeded")
    ledger.release_lock(FUNCTION, first["release_id"])
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="2"
    )

    second = release_upload(world, "3", lambda_context)

    assert second["state"] == "DEPLOYING"
    assert len(codedeploy.calls_to("create_deployment")) == 2
    # The group changes only because the canary alarms are the new version's.
    (update,) = codedeploy.calls_to("update_deployment_group")
    assert sorted(a["name"] for a in update["alarmConfiguration"]["alarms"]) == sorted(
        [
            "rollout-test-canary-orders-v3-error-rate",
            "rollout-test-canary-orders-v3-errors",
            "orders-5xx",
            "orders-latency",
        ]
    )


def test_same_code_as_the_live_version_is_unchanged_and_publishes_nothing(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    uploaded = world.upload(f"{FUNCTION}/build-1-again.zip", function_zip("1"))

    (result,) = deliver(eventbridge_event(uploaded), lambda_context)

    assert result["state"] == "UNCHANGED"
    assert world.published_versions(FUNCTION) == ["1"]
    assert world.alias_version(FUNCTION) == "1"
    release = ledger.get(FUNCTION, result["release_id"])
    assert release is not None
    assert release.current_version == "1"
    assert "already serves this code" in release.reason
    assert [n["kind"] for n in stack.notifications()] == ["release.unchanged"]
    assert codedeploy.calls_to("create_deployment") == []


def test_an_alias_on_latest_is_refused_before_any_code_reaches_it(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
) -> None:
    """An alias that invokes $LATEST serves whatever UpdateFunctionCode puts there: updating it would put
    the build live untested, so nothing is updated, published or deployed."""
    world.create_function(FUNCTION)
    world.lambda_client.create_alias(FunctionName=FUNCTION, Name="live", FunctionVersion="$LATEST")
    before = world.lambda_client.get_function(FunctionName=FUNCTION)["Configuration"]["CodeSha256"]

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "REJECTED"
    assert "$LATEST" in result["reason"]
    assert world.lambda_client.get_function(FunctionName=FUNCTION)["Configuration"]["CodeSha256"] == before
    assert world.published_versions(FUNCTION) == []
    assert codedeploy.calls_to("create_deployment") == []
    assert ledger.get_lock(FUNCTION) is None


# --- queueing -----------------------------------------------------------------------------------


# Upper bounds on the Lambda and CodeDeploy calls of each path (counts are deterministic, unlike times;
# docs/BENCHMARKS.md, "AWS calls per release", says why each call is needed).
RELEASE_CALL_BUDGET = {
    "GetFunction": 2,  # the target's tags and configuration (validation), one poll of the code update
    "GetAlias": 1,
    # The live version's CodeSha256 (is this code already live?), and the new version Active before
    # traffic moves (a SnapStart version is Pending while its snapshot is taken).
    "GetFunctionConfiguration": 2,
    "GetProvisionedConcurrencyConfig": 1,  # pre-flight: the alias's provisioned concurrency is READY
    "UpdateFunctionCode": 1,
    "PublishVersion": 1,
}
RELEASE_CODEDEPLOY_BUDGET = {
    "list_deployments": 1,
    "get_deployment_group": 1,
    "create_deployment_group": 1,  # the first deployment of the function creates its group,
    "update_deployment_group": 1,  # a later one updates it only when it differs
    "create_deployment": 1,
}


def lambda_calls_of(run: Any) -> tuple[Any, Counter[str]]:
    """What `run()` returned and the Lambda operations the package's client sent meanwhile."""
    calls: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    events = aws.client("lambda").meta.events
    events.register("before-call.lambda", count)
    try:
        return run(), calls
    finally:
        events.unregister("before-call.lambda", count)


def test_a_release_makes_each_aws_call_once_and_records_where_its_time_went(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    codedeploy.calls.clear()
    result, calls = lambda_calls_of(lambda: release_upload(world, "2", lambda_context))
    assert result["state"] == "DEPLOYING"
    release = ledger.get(FUNCTION, result["release_id"])
    assert release is not None
    steps = ["lookup", "record", "validate", "update_code", "publish", "alarms", "group", "create"]
    assert list(release.steps) == [*steps, "total"], release.steps
    assert sum(release.steps[s] for s in steps) <= release.steps["total"] + len(steps)  # rounding
    bootstrap = ledger.get(FUNCTION, bootstrapped["release_id"])
    assert bootstrap is not None and {"validate", "update_code", "publish"} <= set(bootstrap.steps)
    assert all(calls[op] <= RELEASE_CALL_BUDGET.get(op, 0) for op in calls), calls
    deploys = Counter(op for op, _ in codedeploy.calls)
    assert all(deploys[op] <= RELEASE_CODEDEPLOY_BUDGET.get(op, 0) for op in deploys), deploys


def test_a_bootstrap_and_a_rejection_make_each_aws_call_once(
    world: ArtifactWorld, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    world.create_function(FUNCTION, {})
    codedeploy.calls.clear()
    result, calls = lambda_calls_of(lambda: release_upload(world, "1", lambda_context))
    assert result["state"] == "BOOTSTRAPPED"
    budget = {**RELEASE_CALL_BUDGET, "GetFunctionConfiguration": 0, "CreateAlias": 1}
    assert all(calls[op] <= budget.get(op, 0) for op in calls), calls
    assert codedeploy.calls == []
    result, calls = lambda_calls_of(
        lambda: release_upload(world, "2", lambda_context, checks={"pre_traffic": "not a list"})
    )
    assert result["state"] == "REJECTED"
    assert not calls, "a broken checks file is refused before the target is read"


def test_an_upload_while_a_release_deploys_is_queued(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    first = release_upload(world, "2", lambda_context)
    second = release_upload(world, "3", lambda_context)

    assert (first["state"], second["state"]) == ("DEPLOYING", "QUEUED")
    queued = ledger.get(FUNCTION, second["release_id"])
    assert queued is not None
    assert queued.target_version == "", "a queued release holds its artifact, not a version"
    assert queued.object_version
    assert first["release_id"] in queued.reason
    assert len(codedeploy.calls_to("create_deployment")) == 1
    assert stack.kinds() == ["deployment.started", "release.queued"]
    lock = ledger.get_lock(FUNCTION)
    assert lock is not None
    assert lock["release_id"] == first["release_id"]


def test_a_queued_release_starts_when_the_lock_is_free_and_reads_the_alias_again(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    first = release_upload(world, "2", lambda_context)
    second = release_upload(world, "3", lambda_context)
    queued = ledger.get(FUNCTION, second["release_id"])
    assert queued is not None

    # Still locked: starting again leaves it queued, without a second notification.
    assert (
        start_release(ReleaseContext.from_settings(Settings.from_env(), ledger), queued).state == State.QUEUED
    )
    assert stack.kinds() == ["deployment.started", "release.queued"]

    # The first release succeeds: CodeDeploy moved the alias to 2, the lock is released.
    codedeploy.finish(first["deployment_id"], "Succeeded")
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="2"
    )
    ledger.release_lock(FUNCTION, first["release_id"])

    started = start_release(ReleaseContext.from_settings(Settings.from_env(), ledger), queued)

    assert started.state == State.DEPLOYING
    assert (started.current_version, started.target_version) == ("2", "3")
    spec = parse_appspec(
        codedeploy.calls_to("create_deployment")[-1]["revision"]["appSpecContent"]["content"]
    )
    assert (spec.current_version, spec.target_version) == ("2", "3")
    assert stack.kinds()[-1] == "deployment.started"


def latest_code_sha(function: str) -> str:
    lambda_client = boto3.client("lambda", region_name=REGION)
    return str(lambda_client.get_function_configuration(FunctionName=function)["CodeSha256"])


def version_code_sha(function: str, version: str) -> str:
    lambda_client = boto3.client("lambda", region_name=REGION)
    configuration = lambda_client.get_function_configuration(FunctionName=function, Qualifier=version)
    return str(configuration["CodeSha256"])


def test_a_queued_release_publishes_nothing_and_leaves_latest_alone_until_it_starts(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    updates: list[str] = []
    real_update = lambda_ops.update_code

    def counted_update(function: str, bucket: str, key: str, object_version: str, *rest: Any) -> Any:
        updates.append(key)
        return real_update(function, bucket, key, object_version, *rest)

    monkeypatch.setattr(lambda_ops, "update_code", counted_update)
    first = release_upload(world, "2", lambda_context)
    latest_while_deploying = latest_code_sha(FUNCTION)

    second = release_upload(world, "3", lambda_context)
    third = release_upload(world, "4", lambda_context)

    assert (second["state"], third["state"]) == ("QUEUED", "QUEUED")
    assert world.published_versions(FUNCTION) == ["1", "2"], "queued uploads publish no version"
    assert latest_code_sha(FUNCTION) == latest_while_deploying == version_code_sha(FUNCTION, "2"), (
        "$LATEST keeps the deploying release's code while others wait"
    )
    assert updates == [f"{FUNCTION}/build-2.zip"], "only the deploying release updated $LATEST"

    # The first release ends: the newest queued upload publishes and starts; the older one is superseded.
    codedeploy.finish(first["deployment_id"], "Succeeded")
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="2"
    )
    finished = ledger.get(FUNCTION, first["release_id"])
    assert finished is not None
    ctx = ReleaseContext.from_settings(Settings.from_env(), ledger)
    report = finish_release(ledger.transition(finished, State.SUCCEEDED), ctx)

    assert report.started == [third["release_id"]]
    assert report.superseded == [second["release_id"]]
    started = ledger.get(FUNCTION, third["release_id"])
    superseded = ledger.get(FUNCTION, second["release_id"])
    assert started is not None and superseded is not None
    assert (started.state, started.current_version, started.target_version) == (State.DEPLOYING, "2", "3")
    assert (superseded.state, superseded.target_version) == (State.SUPERSEDED, "")
    assert world.published_versions(FUNCTION) == ["1", "2", "3"], "the superseded upload left no version"
    assert version_code_sha(FUNCTION, "3") == started.code_sha256 == latest_code_sha(FUNCTION)
    assert updates == [f"{FUNCTION}/build-2.zip", f"{FUNCTION}/build-4.zip"]


def test_deployment_limit_exceeded_queues_the_release_and_frees_the_lock(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    codedeploy.fail_next["create_deployment"] = [
        client_error("DeploymentLimitExceededException", "a wording nobody should parse", "CreateDeployment")
    ]

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "QUEUED"
    assert ledger.get_lock(FUNCTION) is None
    assert stack.kinds() == ["release.queued"]


def test_a_deployment_started_outside_rollout_queues_the_release(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Someone else (SAM, a person) runs a deployment in the function's group.
    first = release_upload(world, "2", lambda_context)
    ledger.release_lock(FUNCTION, first["release_id"])
    assert codedeploy.deployments[first["deployment_id"]].status == "InProgress"

    queued_by_listing = release_upload(world, "3", lambda_context)
    assert queued_by_listing["state"] == "QUEUED"
    assert (
        first["deployment_id"]
        in (ledger.get(FUNCTION, queued_by_listing["release_id"]) or Release("", "")).reason
    )

    # Between listing and creating, the stand-in's own answer is DeploymentLimitExceededException.
    monkeypatch.setattr(codedeploy_ops, "active_deployments", lambda application, group: [])
    queued_by_answer = release_upload(world, "4", lambda_context)
    assert queued_by_answer["state"] == "QUEUED"
    assert len(codedeploy.calls_to("create_deployment")) == 2  # the first, and the refused one
    assert ledger.get_lock(FUNCTION) is None


# --- duplicates, encodings, retries, failures ---------------------------------------------------


def test_a_redelivered_event_makes_one_release_and_one_deployment(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    uploaded = world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))
    event = eventbridge_event(uploaded)

    (first,) = deliver(event, lambda_context)
    (again,) = deliver(json.loads(json.dumps(event)), lambda_context)
    # The same object announced by a classic S3 notification is the same upload.
    (classic,) = deliver(s3_record_event(uploaded), lambda_context)

    assert first["state"] == "DEPLOYING"
    assert again["release_id"] == classic["release_id"] == first["release_id"]
    assert again["duplicate"] is True and classic["duplicate"] is True
    assert len([r for r in ledger.releases(FUNCTION) if r.key == uploaded.key]) == 1
    assert len(codedeploy.calls_to("create_deployment")) == 1
    assert stack.kinds() == ["deployment.started"]


def test_an_older_upload_processed_after_a_newer_one_went_out_is_superseded(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    # Two uploads a second apart whose events arrive in the wrong order.
    earlier = world.upload(f"{FUNCTION}/build-2.zip", function_zip("2"))
    later = world.upload(f"{FUNCTION}/build-3.zip", function_zip("3"))
    now = datetime.now(UTC)
    (newest,) = deliver(eventbridge_event(later, at=now, sequencer="0062E99A88DC407470"), lambda_context)
    deployment_id = codedeploy.calls_to("create_deployment")[0]
    codedeploy.finish(newest["deployment_id"], "Succeeded")
    ledger.release_lock(FUNCTION, newest["release_id"])
    stack.notifications()

    (late,) = deliver(
        eventbridge_event(earlier, at=now - timedelta(seconds=1), sequencer="0062E99A88DC407460"),
        lambda_context,
    )

    assert late["state"] == "SUPERSEDED"
    release = ledger.get(FUNCTION, late["release_id"])
    assert release is not None
    assert newest["release_id"] in release.reason
    assert codedeploy.calls_to("create_deployment") == [deployment_id], "the older build never deploys"
    assert [n["kind"] for n in stack.notifications()[-1:]] == ["release.superseded"]


@pytest.mark.parametrize("key", ["orders/build 7 (hotfix).zip", "orders/a+b%20c.zip", "orders/ünïcode+1.zip"])
def test_url_encoded_keys_of_classic_notifications_find_the_object(
    world: ArtifactWorld, ledger: Ledger, bootstrapped: dict[str, Any], lambda_context: Any, key: str
) -> None:
    uploaded = world.upload(key, function_zip(key))

    (result,) = deliver(s3_record_event(uploaded), lambda_context)

    assert result["state"] == "DEPLOYING"
    release = ledger.get(FUNCTION, result["release_id"])
    assert release is not None
    assert release.key == key


def test_an_eventbridge_key_that_arrives_encoded_is_resolved_against_the_bucket(
    world: ArtifactWorld, ledger: Ledger, bootstrapped: dict[str, Any], lambda_context: Any
) -> None:
    uploaded = world.upload("orders/build 8.zip", function_zip("8"))

    (result,) = deliver(eventbridge_event(uploaded, key="orders/build+8.zip"), lambda_context)

    assert result["state"] == "DEPLOYING"
    assert (ledger.get(FUNCTION, result["release_id"]) or Release("", "")).key == "orders/build 8.zip"


class ConflictingLambda:
    """The real (moto) Lambda client, answering ResourceConflictException to the first updates."""

    def __init__(self, real: Any, conflicts: int) -> None:
        self._real = real
        self.conflicts = conflicts
        self.update_calls = 0

    def update_function_code(self, **params: Any) -> Any:
        self.update_calls += 1
        if self.conflicts:
            self.conflicts -= 1
            raise client_error(
                "ResourceConflictException",
                "The operation cannot be performed at this time.",
                "UpdateFunctionCode",
            )
        return self._real.update_function_code(**params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class InterleavingLambda:
    """The real (moto) Lambda client; another upload replaces $LATEST right after our first update."""

    def __init__(self, real: Any, world: ArtifactWorld) -> None:
        self._real = real
        self._world = world
        self.update_calls = 0

    def update_function_code(self, **params: Any) -> Any:
        self.update_calls += 1
        response = self._real.update_function_code(**params)
        if self.update_calls == 1:
            other = self._world.upload(f"{FUNCTION}/someone-else.zip", function_zip("other"))
            self._real.update_function_code(
                FunctionName=FUNCTION,
                S3Bucket=other.bucket,
                S3Key=other.key,
                S3ObjectVersion=other.version_id,
            )
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def test_code_replaced_by_a_concurrent_upload_is_never_published_as_ours(
    world: ArtifactWorld,
    ledger: Ledger,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = aws.client
    interleaving = InterleavingLambda(route("lambda"), world)
    monkeypatch.setattr(
        aws, "client", lambda service: interleaving if service == "lambda" else route(service)
    )
    ours = function_zip("2")

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "DEPLOYING"
    assert interleaving.update_calls == 2, "the update is redone once $LATEST is seen to hold other code"
    release = ledger.get(FUNCTION, result["release_id"])
    assert release is not None
    assert release.code_sha256 == base64.b64encode(hashlib.sha256(ours).digest()).decode()
    assert ledger.get_lock(FUNCTION) is not None
    lease = aws.table(LEDGER_TABLE).get_item(Key={"pk": f"FN#{FUNCTION}", "sk": "PUBLISH"}).get("Item")
    assert lease is None, "the publish lease is given back"


def test_update_conflicts_are_retried_with_growing_backoff(
    world: ArtifactWorld,
    ledger: Ledger,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = aws.client
    conflicting = ConflictingLambda(route("lambda"), conflicts=3)
    monkeypatch.setattr(aws, "client", lambda service: conflicting if service == "lambda" else route(service))
    delays: list[float] = []
    monkeypatch.setattr(lambda_ops, "sleep", delays.append)

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "DEPLOYING"
    assert conflicting.update_calls == 4
    assert len(delays) == 3
    assert delays[0] <= lambda_ops.CONFLICT_BASE_DELAY
    assert delays[2] >= 2 * lambda_ops.CONFLICT_BASE_DELAY  # half of the grown delay is fixed
    assert all(d <= lambda_ops.CONFLICT_MAX_DELAY for d in delays)


def test_endless_conflicts_end_the_release_failed_with_the_error(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    route = aws.client
    conflicting = ConflictingLambda(route("lambda"), conflicts=100)
    monkeypatch.setattr(aws, "client", lambda service: conflicting if service == "lambda" else route(service))
    monkeypatch.setattr(lambda_ops, "sleep", lambda seconds: None)

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "FAILED"
    assert conflicting.update_calls == lambda_ops.CONFLICT_ATTEMPTS
    assert "ResourceConflictException" in result["reason"]
    assert stack.kinds() == ["release.failed"]


def test_a_codedeploy_error_ends_the_release_failed_and_frees_the_lock(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    codedeploy.fail_next["create_deployment"] = [
        client_error("DeploymentConfigDoesNotExistException", "no such config", "CreateDeployment")
    ]

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "FAILED"
    release = ledger.get(FUNCTION, result["release_id"])
    assert release is not None
    assert "DeploymentConfigDoesNotExistException" in release.reason
    assert ledger.get_lock(FUNCTION) is None
    (note,) = stack.notifications()
    assert note["kind"] == "release.failed"
    assert note["reason"]["text"] == release.reason


def test_deployment_config_tags_map_short_names_and_pass_custom_ones(
    world: ArtifactWorld, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    world.create_function("billing", {"rollout:deployment-config": "Linear10PercentEvery1Minute"})
    world.create_function("search", {"rollout:deployment-config": "Team.Slow5Percent"})
    for function in ("billing", "search"):
        for build in ("1", "2"):
            uploaded = world.upload(f"{function}/b{build}.zip", function_zip(function + build))
            deliver(eventbridge_event(uploaded), lambda_context)

    configs = {
        c["deploymentGroupName"]: c["deploymentConfigName"] for c in codedeploy.calls_to("create_deployment")
    }
    assert configs == {
        "billing": "CodeDeployDefault.LambdaLinear10PercentEvery1Minute",
        "search": "Team.Slow5Percent",
    }


def test_a_config_whose_first_step_ends_before_the_canary_alarms_can_fire_deploys_with_a_warning(
    world: ArtifactWorld,
    ledger: Ledger,
    stack: StackUnderTest,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
) -> None:
    """The canary alarms need a minute for Lambda to publish a minute's errors, then their one-minute
    period: a step of a minute or two moves more traffic before they can fire. The release deploys (the
    post-traffic analysis still judges it) and says so on its record and its notification."""
    codedeploy.configs["Team.Linear1"] = {
        "type": "TimeBasedLinear",
        "timeBasedLinear": {"linearPercentage": 20, "linearInterval": 1},
    }
    codedeploy.configs["Team.Canary3"] = {
        "type": "TimeBasedCanary",
        "timeBasedCanary": {"canaryPercentage": 10, "canaryInterval": 3},
    }
    configs = {
        "fastlinear": "Linear10PercentEvery1Minute",
        "steplinear": "Linear10PercentEvery2Minutes",
        "customfast": "Team.Linear1",
        "customslow": "Team.Canary3",
        "canary": "Canary10Percent5Minutes",
    }
    for function, config in configs.items():
        world.create_function(function, {"rollout:deployment-config": config})
        for build in ("1", "2"):
            uploaded = world.upload(f"{function}/b{build}.zip", function_zip(function + build))
            deliver(eventbridge_event(uploaded), lambda_context)

    warned = {}
    for function in configs:
        (release,) = [r for r in ledger.releases(function) if r.state == State.DEPLOYING]
        warned[function] = release.warnings
    assert {f for f, warnings in warned.items() if warnings} == {"fastlinear", "steplinear", "customfast"}
    (warning,) = warned["customfast"]
    assert "Team.Linear1 moves more traffic to the new version after 60 s" in warning
    assert "at least 120 s" in warning and "post-traffic canary analysis still judges" in warning
    started = [n for n in stack.notifications() if n["kind"] == "deployment.started"]
    by_function = {n["function"]: n.get("warnings") for n in started}
    assert by_function["customfast"] == [warning] and by_function["canary"] is None


# --- rejections ---------------------------------------------------------------------------------


def _zip_with(files: dict[str, str]) -> bytes:
    from tests.support.artifacts_world import build_zip

    return build_zip(dict(files))


REJECTIONS: list[tuple[str, str, bytes, str, str]] = [
    # (id, key, body, reason_code, a phrase the reason must contain)
    ("no-function-segment", "build-1.zip", function_zip("x"), "NO_FUNCTION_SEGMENT", "no function segment"),
    ("bad-suffix", "orders/build-1.tar.gz", function_zip("x"), "BAD_SUFFIX", ".zip"),
    ("empty", "orders/empty.zip", b"", "EMPTY_OBJECT", "empty"),
    (
        "corrupt",
        "orders/corrupt.zip",
        b"PK\x03\x04 this is not really a zip",
        "CORRUPT_ZIP",
        "not a valid zip",
    ),
    ("traversal", "orders/evil.zip", _zip_with({"../../etc/cron.d/x": "boom"}), "UNSAFE_ZIP", "'..'"),
    ("absolute", "orders/abs.zip", _zip_with({"/var/task/app.py": "x"}), "UNSAFE_ZIP", "absolute path"),
    (
        "missing-function",
        "ghost/build-1.zip",
        function_zip("x"),
        "FUNCTION_NOT_FOUND",
        "'ghost' does not exist",
    ),
    ("unmanaged", "legacy/build-1.zip", function_zip("x"), "FUNCTION_NOT_MANAGED", "rollout:managed"),
    (
        "invalid-checks",
        "orders/checks.zip",
        function_zip("x", checks={"pre_traffic": [{"name": "a", "max_duration_ms": 0}]}),
        "INVALID_CHECKS",
        "rollout.json: pre_traffic[0].max_duration_ms",
    ),
    (
        "invalid-yaml-checks",
        "orders/checks-yaml.zip",
        function_zip("x", checks="canary:\n  max_error_rate: lots\n", checks_name="rollout.yaml"),
        "INVALID_CHECKS",
        "canary.max_error_rate",
    ),
]


@pytest.mark.parametrize(
    ("key", "body", "code", "phrase"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS]
)
def test_bad_artifacts_are_rejected_with_a_reason_and_nothing_deployed(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
    key: str,
    body: bytes,
    code: str,
    phrase: str,
) -> None:
    world.create_function(FUNCTION)
    world.create_function("legacy", managed=False)
    latest_before = world.lambda_client.get_function_configuration(FunctionName=FUNCTION)["CodeSha256"]
    uploaded = world.upload(key, body)

    (result,) = deliver(eventbridge_event(uploaded), lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", code)
    assert phrase in result["reason"]
    function = key.split("/")[0] if "/" in key else "(none)"
    (release,) = ledger.releases(function)
    assert (release.state, release.reason_code, release.reason) == (State.REJECTED, code, result["reason"])
    (note,) = stack.notifications()
    assert note["kind"] == "release.rejected"
    assert note["reason"] == {"code": code, "text": result["reason"]}
    assert note["_attributes"]["severity"] == "error"
    assert (
        world.lambda_client.get_function_configuration(FunctionName=FUNCTION)["CodeSha256"] == latest_before
    )
    assert world.alias_version(FUNCTION) is None
    assert codedeploy.calls == [
        ("create_application", {"applicationName": APPLICATION, "computePlatform": "Lambda"})
    ]


def test_an_object_over_the_size_limit_is_rejected_before_it_is_read(
    world: ArtifactWorld, ledger: Ledger, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollout import artifacts

    world.create_function(FUNCTION)
    monkeypatch.setattr(artifacts, "MAX_ARTIFACT_BYTES", 100)
    uploaded = world.upload(f"{FUNCTION}/big.zip", function_zip("x" * 500))

    (result,) = deliver(eventbridge_event(uploaded), lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", "TOO_LARGE")
    assert f"{uploaded.size} bytes" in result["reason"]


def test_an_object_deleted_before_processing_is_rejected(
    world: ArtifactWorld, ledger: Ledger, lambda_context: Any
) -> None:
    world.create_function(FUNCTION)
    uploaded = world.upload(f"{FUNCTION}/gone.zip", function_zip("gone"))
    world.s3.delete_object(Bucket=uploaded.bucket, Key=uploaded.key, VersionId=uploaded.version_id)

    (result,) = deliver(eventbridge_event(uploaded), lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", "OBJECT_NOT_FOUND")
    assert only_release(ledger).state == State.REJECTED


def test_an_object_the_bucket_keeps_no_version_of_is_rejected_before_other_bytes_can_go_live(
    world: ArtifactWorld, ledger: Ledger, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.create_function(FUNCTION)
    latest_before = world.lambda_client.get_function_configuration(FunctionName=FUNCTION)["CodeSha256"]
    # Versioning suspended: an upload overwrites the key's one copy, so no version id pins its bytes.
    world.s3.put_bucket_versioning(Bucket=world.stack.bucket, VersioningConfiguration={"Status": "Suspended"})
    key = f"{FUNCTION}/build-7.zip"
    body = function_zip("validated")
    put = world.s3.put_object(Bucket=world.stack.bucket, Key=key, Body=body)
    uploaded = Uploaded(
        world.stack.bucket, key, put.get("VersionId") or "", len(body), put["ETag"].strip('"')
    )
    real_target = lambda_ops.get_managed_function

    def overwritten_meanwhile(*args: Any) -> Any:
        # Another push to the same key once the first was inspected: Lambda would fetch these bytes.
        world.s3.put_object(Bucket=uploaded.bucket, Key=key, Body=function_zip("never validated"))
        return real_target(*args)

    monkeypatch.setattr(lambda_ops, "get_managed_function", overwritten_meanwhile)

    (result,) = deliver(eventbridge_event(uploaded), lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", "OBJECT_NOT_VERSIONED"), result
    assert "enable versioning" in result["reason"]
    assert world.alias_version(FUNCTION) is None and world.published_versions(FUNCTION) == []
    assert (
        world.lambda_client.get_function_configuration(FunctionName=FUNCTION)["CodeSha256"] == latest_before
    )


@pytest.mark.parametrize("version_id", ["", "null"])
def test_an_upload_s3_names_no_lasting_version_of_is_rejected(
    world: ArtifactWorld, lambda_context: Any, monkeypatch: pytest.MonkeyPatch, version_id: str
) -> None:
    from rollout import s3_ops

    world.create_function(FUNCTION)
    uploaded = world.upload(f"{FUNCTION}/build-8.zip", function_zip("8"))
    real_resolve = s3_ops.resolve
    # What HeadObject answers for an unversioned bucket (no version id) or a suspended one ("null", a
    # version the next upload to the key replaces: S3 user guide, "Adding objects to versioning-suspended
    # buckets").
    monkeypatch.setattr(
        s3_ops,
        "resolve",
        lambda upload: (real_resolve(upload) or pytest.fail())._replace(version_id=version_id),
    )

    (result,) = deliver(eventbridge_event(uploaded), lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", "OBJECT_NOT_VERSIONED"), result
    assert world.alias_version(FUNCTION) is None and world.published_versions(FUNCTION) == []


def test_too_many_alarm_tags_are_rejected_naming_the_tag(world: ArtifactWorld, lambda_context: Any) -> None:
    world.create_function(FUNCTION, {"rollout:alarms": " ".join(f"alarm-{i}" for i in range(9))})
    result = release_upload(world, "1", lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", "BAD_TAG")
    assert "rollout:alarms names 9 alarms" in result["reason"]


def test_an_alarm_named_in_the_tag_that_does_not_exist_rejects_the_upload_naming_it(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
) -> None:
    # Fail closed: DescribeAlarms answers an unknown name with nothing, which once read as "not firing".
    world.create_alarms("orders-5xx")
    world.create_function(FUNCTION, {"rollout:alarms": "orders-5xx orders-gone"})

    result = release_upload(world, "1", lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", "ALARM_NOT_FOUND")
    assert "orders-gone" in result["reason"] and "orders-5xx" not in result["reason"]
    assert world.published_versions(FUNCTION) == [] and world.alias_version(FUNCTION) is None
    assert codedeploy.calls_to("create_deployment") == []
    assert [n["kind"] for n in stack.notifications()] == ["release.rejected"]
    assert ledger.get_lock(FUNCTION) is None


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "b"}}},
        {"Records": [{"eventSource": "aws:s3", "s3": {"object": {"key": "orders/x.zip"}}}]},
        {"Records": "nope"},
        {
            "detail-type": "Object Deleted",
            "detail": {"bucket": {"name": "b"}, "object": {"key": "orders/x.zip"}},
        },
        ["not", "an", "object"],
    ],
    ids=["empty", "no-key", "record-without-bucket", "records-not-a-list", "not-an-upload", "list"],
)
def test_malformed_events_are_answered_with_a_rejected_result(
    stack: StackUnderTest, ledger: Ledger, lambda_context: Any, event: Any
) -> None:
    (result,) = deliver(event, lambda_context)

    assert (result["state"], result["reason_code"]) == ("REJECTED", "MALFORMED_EVENT")
    assert result["reason"]
    assert ledger.locks() == []
    assert stack.notifications() == []


SAMPLES = Path(__file__).resolve().parents[2] / "events"


@pytest.mark.parametrize(
    ("sample", "state", "code"),
    [
        ("artifact_object_created.json", "BOOTSTRAPPED", None),
        ("artifact_s3_record.json", "BOOTSTRAPPED", None),
        ("artifact_bad_suffix.json", "REJECTED", "BAD_SUFFIX"),
        ("artifact_no_function_segment.json", "REJECTED", "NO_FUNCTION_SEGMENT"),
        ("artifact_malformed.json", "REJECTED", "MALFORMED_EVENT"),
    ],
)
def test_sample_events_run_through_the_handler(
    world: ArtifactWorld,
    stack: StackUnderTest,
    lambda_context: Any,
    sample: str,
    state: str,
    code: str | None,
) -> None:
    """The events/ samples (for `sam local invoke -e`), pointed at this stack's bucket and objects."""
    event = json.loads((SAMPLES / sample).read_text())
    world.create_function(FUNCTION)
    if "Records" in event:
        obj = event["Records"][0]["s3"]
        obj["bucket"]["name"] = stack.bucket
        uploaded = world.upload(unquote_plus(obj["object"]["key"]), function_zip(sample))
        obj["object"]["versionId"] = uploaded.version_id
    else:
        event["detail"]["bucket"]["name"] = stack.bucket
        key = event["detail"]["object"].get("key")
        if key:
            event["detail"]["object"]["version-id"] = world.upload(key, function_zip(sample)).version_id

    (result,) = deliver(event, lambda_context)

    assert (result["state"], result["reason_code"]) == (state, code)


def test_a_key_as_long_as_s3_allows_still_deploys_within_every_aws_limit(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    aws_limits: LimitViolations,
) -> None:
    key = f"{FUNCTION}/" + "k" * (1024 - len(FUNCTION) - 1 - len(".zip")) + ".zip"
    assert len(key.encode()) == 1024

    result = release_upload_key(world, key, lambda_context)

    assert result["state"] == "DEPLOYING", result
    description = codedeploy.calls_to("create_deployment")[-1]["description"]
    assert description.startswith(f"rollout release {result['release_id']}: ")
    assert len(description) <= 256
    assert aws_limits.calls_checked > 10 and aws_limits.found == []


# --- one release per object version, however often its event comes back ------------------------


class InvocationDied(Exception):
    """Stands for the end of an invocation that recorded part of its work (killed, timed out)."""


def dies_once(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[int]:
    """Make `owner.name` raise InvocationDied on its first call, as if the process ended there."""
    real = getattr(owner, name)
    calls: list[int] = []

    def first_call_dies(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise InvocationDied(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, first_call_dies)
    return calls


def test_lambdas_retry_of_an_invocation_that_died_carries_on_the_same_release(
    world: ArtifactWorld,
    bootstrapped: dict[str, Any],
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rollout import deployer

    dies_once(monkeypatch, deployer, "start_release")  # after RECEIVED and validation
    event = eventbridge_event(world.upload(f"{FUNCTION}/build-2.zip", function_zip("2")))
    with pytest.raises(InvocationDied):
        deliver(event, lambda_context)
    (stuck,) = [r for r in ledger.releases(FUNCTION) if r.state == State.RECEIVED]

    (retried,) = deliver(event, lambda_context)  # Lambda's retry: the same event

    assert retried["release_id"] == stuck.release_id and retried["state"] == "DEPLOYING"
    assert [r.release_id for r in ledger.releases(FUNCTION) if r.key == stuck.key] == [stuck.release_id]
    assert len(codedeploy.calls_to("create_deployment")) == 1


def test_a_retry_adopts_the_deployment_a_dead_attempt_created_instead_of_deploying_twice(
    world: ArtifactWorld,
    bootstrapped: dict[str, Any],
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The first attempt dies right after CreateDeployment, before the ledger names the deployment.
    dies_once(monkeypatch, Ledger, "start_deployment")
    event = eventbridge_event(world.upload(f"{FUNCTION}/build-2.zip", function_zip("2")))
    with pytest.raises(InvocationDied):
        deliver(event, lambda_context)
    (created,) = codedeploy.calls_to("create_deployment")

    (retried,) = deliver(event, lambda_context)

    assert len(codedeploy.calls_to("create_deployment")) == 1, "the build was deployed once"
    (deployment_id,) = codedeploy.deployments
    assert (retried["state"], retried["deployment_id"]) == ("DEPLOYING", deployment_id)
    release = ledger.get(FUNCTION, retried["release_id"])
    assert release is not None and (release.current_version, release.target_version) == ("1", "2")
    assert ledger.get_lock(FUNCTION)["deployment_id"] == deployment_id
    assert created["description"].startswith(f"rollout release {release.release_id}: ")
    # The dead attempt put the version's canary alarms: the adopted release names them, so its end
    # deletes them (the alarms of a release nobody names would stay, and be billed, forever).
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    put = {a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]}
    assert release.alarms and set(release.alarms) <= put
    assert all("-v2-" in name for name in release.alarms)


# --- CreateDeployment's answer lost after it created the deployment ---------------------------------


def calls_after_create(codedeploy: CodeDeployStandIn) -> list[str]:
    """The CodeDeploy operations called after the last CreateDeployment."""
    operations = [operation for operation, _ in codedeploy.calls]
    last = len(operations) - 1 - operations[::-1].index("create_deployment")
    return operations[last + 1 :]


def recorded_states(release: Release | None) -> list[str]:
    assert release is not None
    return [str(entry["state"]) for entry in release.history]


@pytest.mark.parametrize(
    "code", ["InternalFailure", "ThrottlingException", "DeploymentLimitExceededException"]
)
def test_a_create_deployment_answered_an_error_after_it_created_the_deployment_records_the_release_on_it(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    code: str,
) -> None:
    codedeploy.lose_create_answer(code)

    result = release_upload(world, "2", lambda_context)

    (deployment_id,) = codedeploy.deployments
    assert (result["state"], result["deployment_id"]) == ("DEPLOYING", deployment_id)
    release = ledger.get(FUNCTION, result["release_id"])
    assert recorded_states(release) == ["RECEIVED", "DEPLOYING"], "never queued nor failed"
    assert release is not None and (release.current_version, release.target_version) == ("1", "2")
    assert len(release.alarms) == 2, "its canary alarms are recorded, so its ending deletes them"
    assert (ledger.get_lock(FUNCTION) or {}).get("deployment_id") == deployment_id
    assert len(codedeploy.calls_to("create_deployment")) == 1
    assert stack.kinds() == ["deployment.started"]


@pytest.mark.parametrize(
    ("error", "state", "looked"),
    [
        (
            client_error("DeploymentLimitExceededException", "another one runs", "CreateDeployment"),
            "QUEUED",
            True,
        ),
        # An outright refusal of the first attempt: nothing was created, so nothing is looked for.
        (client_error("InvalidRevisionException", "bad revision", "CreateDeployment"), "FAILED", False),
    ],
)
def test_a_create_deployment_refusal_or_another_running_deployment_stands_when_the_release_has_none(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    error: Any,
    state: str,
    looked: bool,
) -> None:
    codedeploy.fail_next["create_deployment"] = [error]

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == state
    assert ("list_deployments" in calls_after_create(codedeploy)) is looked
    assert codedeploy.deployments == {} and ledger.get_lock(FUNCTION) is None


@pytest.fixture
def create_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The pauses the starter takes before sending CreateDeployment again (recorded, not slept)."""
    pauses: list[float] = []
    monkeypatch.setattr(codedeploy_ops, "sleep", pauses.append)
    return pauses


def test_a_create_deployment_that_failed_is_sent_again_only_once_codedeploy_shows_it_created_nothing(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    create_pauses: list[float],
) -> None:
    # Throttled before it was served, three times (the request never reached CodeDeploy).
    codedeploy.fail_next["create_deployment"] = [
        client_error("ThrottlingException", "Rate exceeded", "CreateDeployment") for _ in range(3)
    ]

    result = release_upload(world, "2", lambda_context)

    (deployment_id,) = codedeploy.deployments
    assert (result["state"], result["deployment_id"]) == ("DEPLOYING", deployment_id)
    assert len(codedeploy.calls_to("create_deployment")) == 4
    operations = [operation for operation, _ in codedeploy.calls]
    creates = [i for i, operation in enumerate(operations) if operation == "create_deployment"]
    between = [operations[sent:resent] for sent, resent in pairwise(creates)]
    assert all("list_deployments" in calls for calls in between), "looked before each resend"
    # botocore standard mode's pauses: a random share of 1, 2, 4 seconds
    assert len(create_pauses) == 3 and all(0 <= p <= 2**i for i, p in enumerate(create_pauses))


def test_a_create_deployment_that_keeps_failing_ends_the_release_failed_after_its_last_attempt(
    world: ArtifactWorld,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    create_pauses: list[float],
) -> None:
    codedeploy.fail_next["create_deployment"] = [
        client_error("InternalFailure", "CodeDeploy is down", "CreateDeployment") for _ in range(20)
    ]

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "FAILED" and "InternalFailure" in result["reason"]
    assert len(codedeploy.calls_to("create_deployment")) == codedeploy_ops.CREATE_ATTEMPTS
    assert len(create_pauses) == codedeploy_ops.CREATE_ATTEMPTS - 1
    assert all(0 <= pause <= codedeploy_ops.CREATE_MAX_PAUSE for pause in create_pauses)
    assert codedeploy.deployments == {} and ledger.get_lock(FUNCTION) is None


def test_a_create_deployment_the_deployers_role_may_not_make_fails_the_release_at_once_saying_why(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
    create_pauses: list[float],
) -> None:
    # A grant missing from the deployer's role: every attempt would be refused the same way.
    denied = "User: arn:aws:sts::123456789012:assumed-role/deployer/x is not authorized to perform: codedeploy:CreateDeployment"
    codedeploy.fail_next["create_deployment"] = [
        client_error("AccessDeniedException", denied, "CreateDeployment") for _ in range(20)
    ]

    result = release_upload(world, "2", lambda_context)

    assert result["state"] == "FAILED"
    assert "AccessDeniedException" in result["reason"] and denied in result["reason"]
    assert len(codedeploy.calls_to("create_deployment")) == 1, "refused outright: never sent again"
    assert create_pauses == [] and "list_deployments" not in calls_after_create(codedeploy)
    assert codedeploy.deployments == {} and ledger.get_lock(FUNCTION) is None
    stored = ledger.get(FUNCTION, result["release_id"])
    assert stored is not None and stored.state == State.FAILED and denied in stored.reason
    assert stack.kinds() == ["release.failed"]


def test_when_codedeploy_cannot_say_whether_create_deployment_created_it_the_release_waits_then_its_events_end_it(
    world: ArtifactWorld,
    stack: StackUnderTest,
    ledger: Ledger,
    codedeploy: CodeDeployStandIn,
    bootstrapped: dict[str, Any],
    lambda_context: Any,
) -> None:
    from functions.deployment_events.app import lambda_handler as deployment_events
    from rollout import claims
    from tests.support.release_world import ReleaseWorld

    codedeploy.lose_create_answer()
    codedeploy.refuse_next_lookup()

    result = release_upload(world, "2", lambda_context)

    # Fail closed: neither FAILED (a deployment may shift traffic) nor deployed again (it would be the
    # build's second), the lock kept and the release claimed until this invocation has certainly ended.
    (deployment_id,) = codedeploy.deployments
    assert result["state"] == "QUEUED" and "could not be asked" in result["reason"]
    waiting = ledger.get(FUNCTION, result["release_id"])
    assert waiting is not None and claims.claim_live(waiting, claims.wall_clock())
    assert (ledger.get_lock(FUNCTION) or {}).get("release_id") == waiting.release_id
    assert len(codedeploy.calls_to("create_deployment")) == 1

    # The deployment's own events find the release by its description.
    events = ReleaseWorld(stack, codedeploy)
    deployment_events(events.event(deployment_id, "START"), lambda_context)
    codedeploy.finish(deployment_id, "Succeeded")
    boto3.client("lambda", region_name=REGION).update_alias(
        FunctionName=FUNCTION, Name="live", FunctionVersion="2"
    )
    deployment_events(events.event(deployment_id, "SUCCESS"), lambda_context)

    ended = ledger.get(FUNCTION, result["release_id"])
    assert ended is not None and (ended.state, ended.deployment_id) == (State.SUCCEEDED, deployment_id)
    assert recorded_states(ended) == ["RECEIVED", "QUEUED", "DEPLOYING", "SUCCEEDED"]
    assert ledger.get_lock(FUNCTION) is None
    assert len(codedeploy.calls_to("create_deployment")) == 1


def test_an_upload_whose_processing_keeps_dying_ends_failed_after_the_last_attempt(
    world: ArtifactWorld,
    bootstrapped: dict[str, Any],
    stack: StackUnderTest,
    ledger: Ledger,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from rollout import deployer

    def always_dies(*args: Any, **kwargs: Any) -> Any:
        raise InvocationDied("out of memory")

    monkeypatch.setattr(deployer, "start_release", always_dies)
    event = eventbridge_event(world.upload(f"{FUNCTION}/build-2.zip", function_zip("2")))
    for _ in range(deployer.MAX_ATTEMPTS):
        with pytest.raises(InvocationDied):
            deliver(event, lambda_context)

    (result,) = deliver(event, lambda_context)

    assert (result["state"], result["reason_code"]) == ("FAILED", "PROCESSING_ABANDONED")
    assert f"stopped {deployer.MAX_ATTEMPTS} times" in result["reason"]
    assert [n["kind"] for n in stack.notifications()] == ["release.failed"]


def test_waiting_for_the_publish_lease_ends_with_the_invocation_and_is_recorded(
    world: ArtifactWorld,
    bootstrapped: dict[str, Any],
    ledger: Ledger,
    lambda_context: Any,
) -> None:
    # Another upload of the function holds $LATEST (its deployer died holding the lease: it lasts 120 s).
    assert ledger.acquire_publish_lease(FUNCTION, "someone-else")
    lambda_context.remaining_ms = 13_000  # 3 s to wait once the reserve for recording is kept back
    started = datetime.now(UTC)

    result = release_upload(world, "2", lambda_context)

    assert (datetime.now(UTC) - started) < timedelta(seconds=8)
    assert (result["state"], result["reason_code"]) == ("FAILED", "INTERNAL_ERROR")
    assert "all the time this invocation had left" in result["reason"]
    assert "OutOfTime" in result["reason"]
