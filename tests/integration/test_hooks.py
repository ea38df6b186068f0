"""The hooks end to end against moto (DynamoDB, S3, Lambda metadata, CloudWatch metric data) and the
CodeDeploy stand-in: what CodeDeploy is told, exactly once, and what the ledger records."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.hook_failure_reporter import app as reporter_app
from functions.post_traffic_hook import app as post_app
from functions.pre_traffic_hook import app as pre_app
from rollout import aws, identity, lambda_metrics, lambda_ops, sts_ops
from rollout.appspec import release_description
from rollout.check_runner import PROBE_EVENT
from rollout.checks import parse_checks
from rollout.ledger import Ledger, Release, new_release_id
from rollout.outcomes import failed_hook_reason
from rollout.states import State
from sandbox.dynamodb_consistency import lagging_in_process
from tests.support.aws_stack import LEDGER_TABLE, POST_HOOK, PRE_HOOK, REGION, StackUnderTest
from tests.support.codedeploy_standin import client_error
from tests.support.hook_world import (
    EXTERNAL_APPLICATION,
    TARGET_FUNCTION,
    LifecycleCodeDeploy,
    ScriptedTarget,
    create_target_function,
    minutes_ago,
    ok,
    put_invocations,
    reply,
    scripted_target,  # noqa: F401 - fixture
    start_deployment,
    teach_moto_percentiles,  # noqa: F401 - fixture
)
from tests.support.identity_proofs import ALICE_ARN, signed_proof, sts_answer
from tests.support.sandbox_support import wait_for

HEALTH = {"name": "health", "event": {"name": "health", "path": "/health"}, "expect": {"statusCode": 200}}
ORDERS = {"name": "orders", "event": {"name": "orders", "path": "/orders"}, "expect": {"statusCode": 200}}


@pytest.fixture
def codedeploy(monkeypatch: pytest.MonkeyPatch) -> LifecycleCodeDeploy:
    """The CodeDeploy stand-in with deployment targets, routed in place of the package's client."""
    standin = LifecycleCodeDeploy()
    real_client = aws.client

    def client(service: str) -> Any:
        return standin if service == "codedeploy" else real_client(service)

    monkeypatch.setattr(aws, "client", client)
    return standin


@pytest.fixture
def world(
    stack: StackUnderTest,
    codedeploy: LifecycleCodeDeploy,
    scripted_target: ScriptedTarget,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[World]:
    monkeypatch.setattr(lambda_ops, "invoke_once", scripted_target)
    create_target_function(stack.function_role_arn)
    yield World(stack, codedeploy, scripted_target)


class World:
    def __init__(
        self, stack: StackUnderTest, codedeploy: LifecycleCodeDeploy, target: ScriptedTarget
    ) -> None:
        self.stack = stack
        self.codedeploy = codedeploy
        self.target = target
        self.ledger = Ledger(LEDGER_TABLE)

    def release(
        self, checks: dict[str, Any] | None, current: str = "1", target: str = "2"
    ) -> tuple[Release, str]:
        """A Rollout release being deployed, with its checks, and its deployment id.

        As the starter does: the release exists first, the deployment's description names it, and the
        release and the function's lock name the deployment.
        """
        release = Release(
            function=TARGET_FUNCTION,
            release_id=new_release_id(),
            state=State.DEPLOYING,
            key=f"{TARGET_FUNCTION}/build-{target}.zip",
            alias="live",
            current_version=current,
            target_version=target,
            checks=parse_checks(checks) if checks is not None else None,
        )
        description = release_description(release.release_id, release.key)
        deployment_id = start_deployment(self.codedeploy, current, target, description=description)
        release.deployment_id = deployment_id
        self.ledger.create(release)
        if self.ledger.acquire_lock(release.function, release.release_id):
            self.ledger.attach_deployment(release.function, release.release_id, deployment_id)
        # CodeDeploy starts with BeforeAllowTraffic; run_post moves on to AfterAllowTraffic.
        self.codedeploy.at_event(deployment_id, "BeforeAllowTraffic")
        return release, deployment_id

    def stored(self, release: Release) -> Release:
        found = self.ledger.get(release.function, release.release_id)
        assert found is not None
        return found

    def statuses(self, deployment_id: str) -> list[str]:
        return [
            c["status"]
            for c in self.codedeploy.calls_to("put_lifecycle_event_hook_execution_status")
            if c["deploymentId"] == deployment_id
        ]

    def reported(self, deployment_id: str, execution_id: str) -> str | None:
        return self.codedeploy.deployments[deployment_id].hook_executions[execution_id]


def hook_event(deployment_id: str, execution_id: str) -> dict[str, str]:
    return {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id}


def run_pre(world: World, deployment_id: str, context: Any) -> tuple[dict[str, Any], str]:
    world.codedeploy.at_event(deployment_id, "BeforeAllowTraffic")
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    return pre_app.lambda_handler(hook_event(deployment_id, execution_id), context), execution_id


def run_post(world: World, deployment_id: str, context: Any) -> tuple[dict[str, Any], str]:
    world.codedeploy.at_event(deployment_id, "AfterAllowTraffic")
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    return post_app.lambda_handler(hook_event(deployment_id, execution_id), context), execution_id


# --- pre-traffic --------------------------------------------------------------------------------
def test_pre_traffic_checks_pass_against_the_exact_target_version(world: World, lambda_context: Any) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH, ORDERS]}, current="6", target="7")
    world.target.answer("7", "health", ok("7"))
    world.target.answer("7", "orders", ok("7"))

    result, execution_id = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Succeeded"
    assert world.statuses(deployment_id) == ["Succeeded"]
    assert world.reported(deployment_id, execution_id) == "Succeeded"
    # The version under test, never the alias (which still points at the old version).
    assert sorted((fn, q, e["path"]) for fn, q, e in world.target.calls) == [
        (TARGET_FUNCTION, "7", "/health"),
        (TARGET_FUNCTION, "7", "/orders"),
    ]
    stored = world.stored(release)
    pre = stored.hook_results["pre_traffic"]
    assert pre["verdict"] == "Succeeded"
    assert pre["reported"] is True
    assert pre["execution_id"] == execution_id
    assert [(c["name"], c["verdict"]) for c in pre["checks"]] == [
        ("health", "Succeeded"),
        ("orders", "Succeeded"),
    ]
    assert all(isinstance(c["duration_ms"], int) for c in pre["checks"])
    assert pre["reason"] == "2 pre-traffic check(s) passed against version 7"
    assert stored.reason_code == ""


@pytest.mark.parametrize(
    ("behaviour", "limit_ms", "error", "excerpt"),
    [
        (
            reply("2", {"errorMessage": "db down", "errorType": "RuntimeError"}, "Unhandled"),
            3000,
            "function error (Unhandled)",
            "db down",
        ),
        (
            reply("2", {"statusCode": 503, "body": "busy"}),
            3000,
            "$.statusCode: expected 200, got 503",
            "busy",
        ),
        (
            reply("2", b"<html>502 Bad Gateway</html>"),
            3000,
            "response is not JSON",
            "<html>502 Bad Gateway</html>",
        ),
        (("delay", 0.4, ok("2")), 100, "no answer within the 100 ms limit", None),
        ("hang", 200, "no answer within the 200 ms limit", None),
        (
            client_error("ResourceNotFoundException", "Function not found: orders-api:2", "Invoke"),
            3000,
            "invoke failed (ResourceNotFoundException",
            None,
        ),
    ],
    ids=["function-error", "mismatch", "garbage", "slow", "hangs", "invoke-error"],
)
def test_pre_traffic_check_failures_report_failed_and_say_why(
    world: World, lambda_context: Any, behaviour: Any, limit_ms: int, error: str, excerpt: str | None
) -> None:
    release, deployment_id = world.release({"pre_traffic": [{**HEALTH, "max_duration_ms": limit_ms}]})
    world.target.answer("2", "health", behaviour)

    started = time.monotonic()
    result, execution_id = run_pre(world, deployment_id, lambda_context)

    assert time.monotonic() - started < 5
    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    assert world.reported(deployment_id, execution_id) == "Failed"
    stored = world.stored(release)
    check = stored.hook_results["pre_traffic"]["checks"][0]
    assert check["verdict"] == "Failed"
    assert error in check["error"]
    if excerpt:
        assert excerpt in check["excerpt"]
    assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
    assert stored.reason.startswith("pre-traffic check 'health' failed against version 2: ")
    assert error in stored.reason


def test_one_failing_check_among_several_names_it_and_counts_the_rest(
    world: World, lambda_context: Any
) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH, ORDERS]})
    world.target.answer("2", "health", ok("2"))
    world.target.answer("2", "orders", reply("2", {"statusCode": 500}))

    run_pre(world, deployment_id, lambda_context)

    stored = world.stored(release)
    assert world.statuses(deployment_id) == ["Failed"]
    assert stored.reason.startswith("pre-traffic check 'orders' failed")
    verdicts = {c["name"]: c["verdict"] for c in stored.hook_results["pre_traffic"]["checks"]}
    assert verdicts == {"health": "Succeeded", "orders": "Failed"}


@pytest.mark.parametrize("checks", [None, {}], ids=["none-stored", "defaults-stored"])
def test_without_pre_traffic_checks_the_hook_probes_that_the_version_starts(
    world: World, lambda_context: Any, checks: dict | None
) -> None:
    release, deployment_id = world.release(checks)
    world.target.answer("2", "", ok("2"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Succeeded"
    assert world.statuses(deployment_id) == ["Succeeded"]
    assert world.target.calls == [(TARGET_FUNCTION, "2", PROBE_EVENT)]
    pre = world.stored(release).hook_results["pre_traffic"]
    assert [c["name"] for c in pre["checks"]] == ["start probe"]
    assert "version 2 starts (start probe)" in pre["reason"]
    assert f"release {release.release_id}" in pre["reason"]


@pytest.mark.parametrize(
    "error_type",
    ["Runtime.ImportModuleError", "Runtime.HandlerNotFound", "Runtime.ExitError", "Sandbox.Timedout"],
)
def test_a_version_that_cannot_start_fails_the_probe(
    world: World, lambda_context: Any, error_type: str
) -> None:
    release, deployment_id = world.release(None)
    failure = {"errorType": error_type, "errorMessage": "Unable to import module 'app'"}
    world.target.answer("2", "", reply("2", failure, function_error="Unhandled"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Failed"
    assert f"the version cannot start ({error_type})" in result["reason"]
    assert world.stored(release).reason_code == "HOOK_EXECUTION_FAILURE"


def test_a_handler_that_rejects_the_probe_event_has_still_started(world: World, lambda_context: Any) -> None:
    _, deployment_id = world.release(None)
    refusal = {"errorType": "KeyError", "errorMessage": "'path'"}
    world.target.answer("2", "", reply("2", refusal, function_error="Unhandled"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Succeeded"


def test_the_probe_can_be_switched_off(world: World, lambda_context: Any) -> None:
    release, deployment_id = world.release({"probe": False})

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Succeeded"
    assert world.target.calls == []
    assert "the start probe is off" in world.stored(release).hook_results["pre_traffic"]["reason"]


def test_the_hooks_own_exception_still_reports_failed(world: World, lambda_context: Any) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    world.codedeploy.fail_next["list_deployment_targets"] = [
        client_error("InternalFailure", "CodeDeploy is having a bad day", "ListDeploymentTargets")
    ]

    result, execution_id = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    stored = world.stored(release)
    assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
    assert stored.reason.startswith("pre-traffic hook error: ClientError:")
    assert "CodeDeploy is having a bad day" in stored.reason
    assert stored.hook_results["pre_traffic"]["execution_id"] == execution_id


def unreadable_deployment(world: World) -> list[Any]:
    """GetDeployment fails for the hook (as often as botocore's retries would send it: once here)."""
    return [client_error("InternalFailure", "CodeDeploy is having a bad day", "GetDeployment")]


def started_release_the_index_trails(world: World) -> tuple[Release, str]:
    """A release recorded DEPLOYING a moment ago (`World.release`), while the ledger's index and eventual
    reads trail by a minute."""
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    assert (world.ledger.get_lock(release.function) or {}).get("deployment_id") == deployment_id
    assert world.ledger.by_deployment(deployment_id) is None, "the index does not know it yet"
    return release, deployment_id


def test_a_hook_that_cannot_read_its_deployment_records_why_on_the_release_the_index_does_not_show_yet(
    world: World, lambda_context: Any
) -> None:
    with lagging_in_process(gsi_lag=60, eventual_read_lag=60):
        release, deployment_id = started_release_the_index_trails(world)
        world.codedeploy.fail_next["get_deployment"] = unreadable_deployment(world)

        result, execution_id = run_pre(world, deployment_id, lambda_context)

        assert result["status"] == "Failed" and world.statuses(deployment_id) == ["Failed"]
        why = f"pre-traffic hook could not read deployment {deployment_id}: "
        stored = world.stored(release)
        assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
        assert stored.reason.startswith(why) and "CodeDeploy is having a bad day" in stored.reason
        pre = stored.hook_results["pre_traffic"]
        assert (pre["verdict"], pre["reported"], pre["execution_id"]) == ("Failed", True, execution_id)
        assert world.target.calls == []


@contextmanager
def release_codedeploy_says_nothing_of(world: World) -> Iterator[tuple[Release, str]]:
    """A release started a moment ago (`started_release_the_index_trails`), while CodeDeploy answers
    nothing about its deployment: neither the deployment nor its target."""
    with lagging_in_process(gsi_lag=60, eventual_read_lag=60):
        release, deployment_id = started_release_the_index_trails(world)
        world.codedeploy.fail_next["get_deployment"] = unreadable_deployment(world)
        world.codedeploy.fail_next["list_deployment_targets"] = [
            client_error("ThrottlingException", "Rate exceeded", "ListDeploymentTargets")
        ]
        yield release, deployment_id


def ended_on_failed_hook(world: World, release: Release, deployment_id: str, lambda_context: Any) -> Release:
    """CodeDeploy fails the deployment on the hook's report and rolls back; its event ends the release."""
    from functions.deployment_events.app import lambda_handler as deployment_events
    from tests.support.release_world import ReleaseWorld

    world.codedeploy.finish(
        deployment_id,
        "Failed",
        error_information={
            "code": "HOOK_EXECUTION_FAILURE",
            "message": "The BeforeAllowTraffic lifecycle event hook reported Failed",
        },
        rollback_info={"rollbackDeploymentId": "d-ROLLBACK1", "rollbackMessage": ""},
    )
    event = ReleaseWorld(world.stack, world.codedeploy).event(deployment_id, "FAILURE", TARGET_FUNCTION)
    deployment_events(event, lambda_context)
    ended = world.stored(release)
    assert ended.state == State.ROLLED_BACK and ended.reason_code == "HOOK_EXECUTION_FAILURE"
    (announced,) = [n for n in world.stack.notifications() if n["kind"] == "deployment.rolled_back"]
    assert announced["reason"]["text"] == ended.reason
    return ended


def test_a_hook_that_finds_no_release_for_its_deployment_leaves_why_for_the_deployments_ending(
    world: World, lambda_context: Any
) -> None:
    with release_codedeploy_says_nothing_of(world) as (release, deployment_id):
        result, execution_id = run_pre(world, deployment_id, lambda_context)

        assert result["status"] == "Failed" and world.statuses(deployment_id) == ["Failed"]
        assert world.stored(release).hook_results == {}, "the hook found no release to record on"
        ended = ended_on_failed_hook(world, release, deployment_id, lambda_context)

    why = f"pre-traffic hook could not read deployment {deployment_id}: "
    assert ended.reason.startswith(why), ended.reason
    assert "CodeDeploy is having a bad day; no release found for it" in ended.reason
    pre = ended.hook_results["pre_traffic"]
    assert (pre["verdict"], pre["reported"], pre["execution_id"]) == ("Failed", True, execution_id)
    assert world.ledger.kept_hook_results(deployment_id) == {}, "recorded on the release, kept no longer"


def test_a_dead_hook_whose_release_is_not_found_leaves_why_for_the_deployments_ending(
    world: World, lambda_context: Any
) -> None:
    with release_codedeploy_says_nothing_of(world) as (release, deployment_id):
        execution_id = world.codedeploy.new_hook_execution(deployment_id)
        record = destination_record(
            deployment_id, execution_id, PRE_HOOK, "RetriesExhausted", {"errorMessage": "Runtime exited"}
        )

        reporter_app.lambda_handler(record, lambda_context)

        assert world.reported(deployment_id, execution_id) == "Failed"
        ended = ended_on_failed_hook(world, release, deployment_id, lambda_context)

    assert ended.reason.startswith(
        "pre-traffic hook failed without reporting (RetriesExhausted): Runtime exited; no release found for it"
    ), ended.reason
    pre = ended.hook_results["pre_traffic"]
    assert (pre["verdict"], pre["reported"], pre["execution_id"]) == ("Failed", True, execution_id)


def test_nearing_its_timeout_while_checks_hang_it_reports_failed_with_time_to_spare(
    world: World, lambda_context: Any
) -> None:
    release, deployment_id = world.release({"pre_traffic": [{**HEALTH, "max_duration_ms": 60_000}]})
    world.target.answer("2", "health", "hang")
    # 1.5 s left before the 10 s reporting margin.
    lambda_context.remaining_ms = 11_500

    started = time.monotonic()
    result, _ = run_pre(world, deployment_id, lambda_context)

    assert time.monotonic() - started < 3
    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    stored = world.stored(release)
    assert stored.hook_results["pre_traffic"]["checks"][0]["error"] == (
        "the hook ran out of time while waiting for the answer"
    )
    assert "'health' failed" in stored.reason


def test_nearing_its_timeout_while_codedeploy_is_slow_it_reports_failed(
    world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    unblock = threading.Event()
    slow_answer = world.codedeploy._op_get_deployment

    def get_deployment_slowly(deploymentId: str) -> dict[str, Any]:
        unblock.wait(10)
        return slow_answer(deploymentId=deploymentId)

    monkeypatch.setattr(world.codedeploy, "_op_get_deployment", get_deployment_slowly, raising=False)
    lambda_context.remaining_ms = 11_000
    try:
        started = time.monotonic()
        result, _ = run_pre(world, deployment_id, lambda_context)
        elapsed = time.monotonic() - started
    finally:
        unblock.set()

    assert elapsed < 3
    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    stored = world.stored(release)
    assert stored.reason == (
        "pre-traffic hook ran out of time while reading the deployment; reported Failed before its own timeout"
    )


def test_a_repeated_invocation_reports_once_and_does_not_test_again(
    world: World, lambda_context: Any
) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    world.target.answer("2", "health", reply("2", {"statusCode": 500}))
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    event = hook_event(deployment_id, execution_id)

    first = pre_app.lambda_handler(event, lambda_context)
    second = pre_app.lambda_handler(event, lambda_context)

    assert first["status"] == "Failed"
    assert second["status"] == "AlreadyReported"
    assert world.statuses(deployment_id) == ["Failed"]
    assert len(world.target.calls) == 1
    assert world.stored(release).hook_results["pre_traffic"]["verdict"] == "Failed"


def test_a_repeat_after_a_lost_report_reports_the_recorded_verdict(world: World, lambda_context: Any) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    world.target.answer("2", "health", ok("2"))
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    event = hook_event(deployment_id, execution_id)
    world.codedeploy.fail_next["put_lifecycle_event_hook_execution_status"] = [
        client_error("ThrottlingException", "Rate exceeded", "PutLifecycleEventHookExecutionStatus")
    ]

    # The report cannot be made: the invocation fails (so the on-failure destination hears of it).
    with pytest.raises(Exception, match="Rate exceeded"):
        pre_app.lambda_handler(event, lambda_context)
    assert world.stored(release).hook_results["pre_traffic"]["reported"] is False

    again = pre_app.lambda_handler(event, lambda_context)

    assert again["status"] == "Succeeded"
    assert len(world.target.calls) == 1
    assert world.reported(deployment_id, execution_id) == "Succeeded"
    assert world.stored(release).hook_results["pre_traffic"]["reported"] is True


def test_a_repeated_invocation_outside_rollout_is_told_already_completed(
    world: World, lambda_context: Any
) -> None:
    deployment_id = start_deployment(world.codedeploy, application=EXTERNAL_APPLICATION)
    world.codedeploy.at_event(deployment_id, "BeforeAllowTraffic")
    world.target.answer("2", "", ok("2"))
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    event = hook_event(deployment_id, execution_id)

    assert pre_app.lambda_handler(event, lambda_context)["status"] == "Succeeded"
    assert pre_app.lambda_handler(event, lambda_context)["status"] == "Succeeded"

    # Without a ledger record the second run tests again; CodeDeploy keeps the first status.
    assert world.reported(deployment_id, execution_id) == "Succeeded"


def test_a_malformed_event_is_ignored_without_reporting(world: World, lambda_context: Any) -> None:
    result = pre_app.lambda_handler({"DeploymentId": "d-ABCDEFGHI"}, lambda_context)

    assert result["status"] == "Ignored"
    assert "LifecycleEventHookExecutionId" in result["reason"]
    assert world.codedeploy.calls_to("put_lifecycle_event_hook_execution_status") == []


# --- deployments Rollout did not start ---------------------------------------------------------
def tag_target(tags: dict[str, str]) -> None:
    client = boto3.client("lambda", region_name=REGION)
    arn = client.get_function(FunctionName=TARGET_FUNCTION)["Configuration"]["FunctionArn"]
    client.tag_resource(Resource=arn, Tags=tags)


def test_a_deployment_not_started_by_rollout_takes_checks_from_the_tag(
    world: World, lambda_context: Any
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="team-checks")
    s3.put_object(Bucket="team-checks", Key="orders/rollout.json", Body=json.dumps({"pre_traffic": [HEALTH]}))
    tag_target({"rollout:checks": "s3://team-checks/orders/rollout.json"})
    deployment_id = start_deployment(world.codedeploy, "4", "5", application=EXTERNAL_APPLICATION)
    world.target.answer("5", "health", reply("5", {"statusCode": 500}))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    assert [(q, e["path"]) for _, q, e in world.target.calls] == [("5", "/health")]
    assert "pre-traffic check 'health' failed against version 5" in result["reason"]


def test_a_tag_naming_a_missing_document_fails_with_the_reason(world: World, lambda_context: Any) -> None:
    tag_target({"rollout:checks": "s3://rollout-test-artifacts/nowhere/rollout.json"})
    deployment_id = start_deployment(world.codedeploy, application=EXTERNAL_APPLICATION)

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    assert result["reason"] == (
        "pre-traffic checks unavailable: cannot read s3://rollout-test-artifacts/nowhere/rollout.json "
        "(named by the rollout:checks tag): NoSuchKey"
    )


def test_a_tag_naming_an_empty_document_fails_rather_than_testing_nothing(
    world: World, lambda_context: Any
) -> None:
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="team-checks")
    s3.put_object(Bucket="team-checks", Key="orders/rollout.yaml", Body=b"")
    tag_target({"rollout:checks": "s3://team-checks/orders/rollout.yaml"})
    deployment_id = start_deployment(world.codedeploy, application=EXTERNAL_APPLICATION)
    world.target.answer("2", "", ok("2"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    assert (
        "s3://team-checks/orders/rollout.yaml (named by the rollout:checks tag) is invalid"
        in result["reason"]
    )
    assert "is empty" in result["reason"]


def test_a_tag_naming_a_huge_document_fails_having_read_only_past_the_bound(
    world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.response import StreamingBody

    limit = 1024 * 1024
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="team-checks")
    s3.put_object(Bucket="team-checks", Key="orders/rollout.json", Body=b" " * (3 * limit))
    tag_target({"rollout:checks": "s3://team-checks/orders/rollout.json"})
    deployment_id = start_deployment(world.codedeploy, application=EXTERNAL_APPLICATION)
    asked: list[int | None] = []
    read = StreamingBody.read

    def counted(body: StreamingBody, amt: int | None = None) -> bytes:
        asked.append(amt)
        return read(body, amt)

    monkeypatch.setattr(StreamingBody, "read", counted)

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    assert result["reason"] == (
        "pre-traffic checks unavailable: cannot read s3://team-checks/orders/rollout.json (named by the "
        f"rollout:checks tag): s3://team-checks/orders/rollout.json is longer than {limit} bytes"
    )
    assert asked == [limit + 1]  # never the whole object


def test_an_untagged_function_outside_rollout_has_no_checks(world: World, lambda_context: Any) -> None:
    deployment_id = start_deployment(world.codedeploy, application=EXTERNAL_APPLICATION)
    world.target.answer("2", "", ok("2"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Succeeded"]
    assert "has no rollout:checks tag" in result["reason"]


# --- post-traffic -------------------------------------------------------------------------------
@pytest.fixture
def post_world(world: World, teach_moto_percentiles: None) -> World:  # noqa: F811
    return world


def shifted(world: World, deployment_id: str, minutes: float = 6) -> tuple[Any, Any]:
    """Lifecycle times: traffic shifted for `minutes`, and AfterAllowTraffic started long enough ago
    for CloudWatch's figures of the window to be final (moto answers on the real clock)."""
    settled = lambda_metrics.METRICS_SETTLE.total_seconds() / 60 + 1
    allow, after = minutes_ago(minutes + settled), minutes_ago(settled)
    world.codedeploy.set_lifecycle(
        deployment_id,
        {
            "BeforeAllowTraffic": (allow - timedelta(minutes=1), allow),
            "AllowTraffic": (allow, after),
            "AfterAllowTraffic": (after, None),
        },
    )
    return allow, after


def test_post_traffic_checks_go_through_the_alias_and_an_equal_canary_passes(
    post_world: World, lambda_context: Any
) -> None:
    world = post_world
    release, deployment_id = world.release({"post_traffic": [HEALTH]})
    allow, _ = shifted(world, deployment_id)
    put_invocations("2", allow + timedelta(minutes=1), 40, errors=0, duration_ms=100)
    put_invocations("1", allow + timedelta(minutes=1), 360, errors=0, duration_ms=100)
    world.target.answer("live", "health", ok("2"))
    world.codedeploy.calls.clear()

    result, _ = run_post(world, deployment_id, lambda_context)

    assert result["status"] == "Succeeded"
    assert world.statuses(deployment_id) == ["Succeeded"]
    assert [q for _, q, _ in world.target.calls] == ["live"]
    # The target's lifecycle events serve the turn check and the traffic window: read once.
    assert len(world.codedeploy.calls_to("list_deployment_targets")) == 1
    assert len(world.codedeploy.calls_to("get_deployment_target")) == 1
    post = world.stored(release).hook_results["post_traffic"]
    assert post["checks"][0]["verdict"] == "Succeeded"
    assert post["canary"]["verdict"] == "Succeeded"
    assert post["canary"]["new"]["invocations"] == 40
    assert post["canary"]["old"]["invocations"] == 360
    assert post["canary"]["new"]["p99_duration_ms"] == 100
    assert (
        post["reason"]
        == "1 post-traffic check(s) passed through alias live; canary: canary within thresholds"
    )


def test_a_canary_with_a_worse_error_rate_fails(post_world: World, lambda_context: Any) -> None:
    world = post_world
    release, deployment_id = world.release(None)
    allow, _ = shifted(world, deployment_id)
    put_invocations("2", allow + timedelta(minutes=2), 50, errors=5)
    put_invocations("1", allow + timedelta(minutes=2), 450, errors=1)

    result, _ = run_post(world, deployment_id, lambda_context)

    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    stored = world.stored(release)
    assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
    assert stored.reason.startswith("post-traffic canary failed: error rate of version 2 is 10.00% (5/50)")
    canary = stored.hook_results["post_traffic"]["canary"]
    assert (canary["new"]["errors"], canary["old"]["errors"]) == (5, 1)


def test_a_canary_with_a_slower_p99_fails(post_world: World, lambda_context: Any) -> None:
    world = post_world
    release, deployment_id = world.release({"canary": {"max_p99_duration_ratio": 2.0}})
    allow, _ = shifted(world, deployment_id)
    put_invocations("2", allow + timedelta(minutes=1), 100, duration_ms=100, slow_ms=900)
    put_invocations("1", allow + timedelta(minutes=1), 100, duration_ms=100, slow_ms=300)

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    stored = world.stored(release)
    assert "p99 duration of version 2 is 900 ms, above 2 x version 1's 300 ms" in stored.reason


def test_a_better_canary_passes(post_world: World, lambda_context: Any) -> None:
    world = post_world
    release, deployment_id = world.release(None)
    allow, _ = shifted(world, deployment_id)
    put_invocations("2", allow + timedelta(minutes=1), 60, errors=0, duration_ms=50)
    put_invocations("1", allow + timedelta(minutes=1), 540, errors=30, duration_ms=200)

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Succeeded"]
    assert world.stored(release).hook_results["post_traffic"]["canary"]["failures"] == []


def test_too_little_canary_traffic_fails_as_inconclusive(post_world: World, lambda_context: Any) -> None:
    """Pain point: low traffic must never pass silently. Without a checks file the defaults apply."""
    world = post_world
    release, deployment_id = world.release(None)
    allow, _ = shifted(world, deployment_id)
    put_invocations("2", allow + timedelta(minutes=1), 4)

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    reason = world.stored(release).reason
    assert "canary inconclusive: version 2 had 4 invocation(s)" in reason and "fewer than the 20" in reason


def test_too_little_canary_traffic_passes_unjudged_only_when_asked_and_says_so(
    post_world: World, lambda_context: Any
) -> None:
    world = post_world
    release, deployment_id = world.release({"canary": {"strict": False, "min_invocations": 10}})
    allow, _ = shifted(world, deployment_id)
    put_invocations("2", allow + timedelta(minutes=1), 4, errors=2)

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Succeeded"]
    post = world.stored(release).hook_results["post_traffic"]
    assert any("4 invocation(s)" in w and "fewer than the 10" in w for w in post["warnings"])
    assert "canary inconclusive, passed unjudged (canary.strict is false)" in post["reason"]
    assert post["canary"]["inconclusive"] is True


def services_answer_at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """The services' clock (the Date of their answers) reads `when`: moto answers on the local clock,
    where the sandbox runs CloudWatch and CodeDeploy on one faster clock."""
    monkeypatch.setattr(aws, "server_time", lambda response: when)


def test_the_canary_window_is_the_deployments_own_not_the_local_clocks(
    post_world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local sandbox runs CodeDeploy on a faster clock: its times may lie hours ahead of ours."""
    world = post_world
    release, deployment_id = world.release(None)
    allow = minutes_ago(-180)
    after = allow + timedelta(minutes=30)
    services_answer_at(monkeypatch, after + lambda_metrics.METRICS_SETTLE + timedelta(minutes=2))
    world.codedeploy.set_lifecycle(
        deployment_id, {"AllowTraffic": (allow, after), "AfterAllowTraffic": (after, None)}
    )
    # Errors before traffic began shifting (an earlier release) are not this canary's.
    put_invocations("2", allow - timedelta(minutes=10), 100, errors=100)
    put_invocations("2", allow + timedelta(minutes=5), 30)
    put_invocations("1", allow + timedelta(minutes=5), 300)

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Succeeded"]
    canary = world.stored(release).hook_results["post_traffic"]["canary"]
    assert (canary["new"]["invocations"], canary["new"]["errors"]) == (30, 0)
    assert canary["window"]["start"] == allow.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert canary["window"]["end"] == after.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_without_lifecycle_times_the_window_starts_with_the_deployment(
    post_world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = post_world
    release, deployment_id = world.release(None)
    # The window then ends when the hook runs; CloudWatch's figures of it are final a few minutes on.
    services_answer_at(monkeypatch, minutes_ago(-5))
    world.codedeploy.deployments[deployment_id].create_time = minutes_ago(8)
    put_invocations("2", minutes_ago(5), 25)
    put_invocations("1", minutes_ago(5), 200)

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Succeeded"]
    post = world.stored(release).hook_results["post_traffic"]
    assert post["canary"]["new"]["invocations"] == 25
    assert any("starts when the deployment did" in w for w in post["warnings"])


def test_a_post_traffic_check_answered_by_the_old_version_fails(
    post_world: World, lambda_context: Any
) -> None:
    world = post_world
    release, deployment_id = world.release({"post_traffic": [HEALTH]})
    shifted(world, deployment_id)
    world.target.answer("live", "health", ok("1"))

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    assert world.stored(release).reason.startswith(
        "post-traffic check 'health' failed against alias live: answered by version 1, not version 2"
    )


def test_unreadable_metrics_fail_the_post_traffic_hook(
    post_world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = post_world
    release, deployment_id = world.release(None)
    shifted(world, deployment_id)
    cloudwatch = aws.client("cloudwatch")

    def denied(**_: Any) -> Any:
        raise client_error(
            "AccessDenied", "not authorized to perform cloudwatch:GetMetricData", "GetMetricData"
        )

    monkeypatch.setattr(cloudwatch, "get_metric_data", denied)

    run_post(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    assert "cloudwatch:GetMetricData" in world.stored(release).reason


# --- the on-failure destination -----------------------------------------------------------------
def destination_record(
    deployment_id: str, execution_id: str, hook: str, condition: str, response: Any
) -> dict[str, Any]:
    return {
        "version": "1.0",
        "timestamp": "2026-03-01T12:05:00.000Z",
        "requestContext": {
            "requestId": "0c5d3f4e-6f4b-4b8e-9a57-3b8f0a0b7f11",
            "functionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{hook}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": 1,
        },
        "requestPayload": hook_event(deployment_id, execution_id),
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": response,
    }


def test_a_hook_that_timed_out_is_reported_failed_by_the_destination(
    world: World, lambda_context: Any
) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    record = destination_record(
        deployment_id,
        execution_id,
        PRE_HOOK,
        "RetriesExhausted",
        {"errorType": "Sandbox.Timedout", "errorMessage": "Task timed out after 300.00 seconds"},
    )

    result = reporter_app.lambda_handler(record, lambda_context)

    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    assert world.reported(deployment_id, execution_id) == "Failed"
    stored = world.stored(release)
    assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
    assert stored.reason == (
        "pre-traffic hook failed without reporting (RetriesExhausted): "
        "Sandbox.Timedout: Task timed out after 300.00 seconds"
    )
    pre = stored.hook_results["pre_traffic"]
    assert (pre["verdict"], pre["reported"], pre["execution_id"]) == ("Failed", True, execution_id)


def test_an_expired_hook_event_is_reported_failed(world: World, lambda_context: Any) -> None:
    release, deployment_id = world.release(None)
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    record = destination_record(deployment_id, execution_id, POST_HOOK, "EventAgeExceeded", None)

    reporter_app.lambda_handler(record, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    stored = world.stored(release)
    assert (
        stored.reason == "post-traffic hook never ran: its event expired in Lambda's queue (EventAgeExceeded)"
    )
    assert stored.hook_results["post_traffic"]["verdict"] == "Failed"


def test_the_destination_does_not_overrule_a_hook_that_reported(world: World, lambda_context: Any) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    world.target.answer("2", "health", ok("2"))
    _, execution_id = run_pre(world, deployment_id, lambda_context)
    record = destination_record(
        deployment_id, execution_id, PRE_HOOK, "RetriesExhausted", {"errorMessage": "Runtime exited"}
    )

    result = reporter_app.lambda_handler(record, lambda_context)

    assert result["status"] == "AlreadyReported"
    assert world.statuses(deployment_id) == ["Succeeded"]
    stored = world.stored(release)
    assert stored.hook_results["pre_traffic"]["verdict"] == "Succeeded"
    assert stored.reason_code == ""


def test_the_destination_leaves_the_verdict_of_a_hook_killed_after_its_report_arrived(
    world: World, lambda_context: Any
) -> None:
    # The hook recorded Succeeded, reported it, and was killed before it could mark it reported.
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    world.target.answer("2", "health", ok("2"))
    _, execution_id = run_pre(world, deployment_id, lambda_context)
    judged = world.stored(release).hook_results["pre_traffic"]
    world.ledger.record_hook_result(
        release.function, release.release_id, "pre_traffic", {**judged, "reported": False}
    )
    record = destination_record(
        deployment_id, execution_id, PRE_HOOK, "RetriesExhausted", {"errorMessage": "signal: kill"}
    )

    result = reporter_app.lambda_handler(record, lambda_context)

    assert result["status"] == "AlreadyReported"
    # Failed was sent (the hook's report might never have arrived); CodeDeploy kept the hook's Succeeded.
    assert world.statuses(deployment_id) == ["Succeeded", "Failed"]
    assert world.reported(deployment_id, execution_id) == "Succeeded"
    pre = world.stored(release).hook_results["pre_traffic"]
    assert (pre["verdict"], pre["reported"]) == ("Succeeded", True)
    stored = world.stored(release)
    assert stored.reason_code == "" and failed_hook_reason(stored) == "", "its success is not unproven"


def test_the_destination_reports_after_a_lost_report(world: World, lambda_context: Any) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    world.target.answer("2", "health", ok("2"))
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    world.codedeploy.fail_next["put_lifecycle_event_hook_execution_status"] = [
        client_error("ThrottlingException", "Rate exceeded", "PutLifecycleEventHookExecutionStatus")
    ]
    with pytest.raises(Exception, match="Rate exceeded"):
        pre_app.lambda_handler(hook_event(deployment_id, execution_id), lambda_context)
    record = destination_record(
        deployment_id,
        execution_id,
        PRE_HOOK,
        "RetriesExhausted",
        {"errorType": "ClientError", "errorMessage": "Rate exceeded"},
    )

    reporter_app.lambda_handler(record, lambda_context)

    assert world.reported(deployment_id, execution_id) == "Failed"
    pre = world.stored(release).hook_results["pre_traffic"]
    # What the hook saw is kept next to why it could not report.
    assert [c["name"] for c in pre["checks"]] == ["health"]
    assert pre["reported_by"] == "on-failure destination"


def test_the_destination_reports_for_a_deployment_outside_rollout(world: World, lambda_context: Any) -> None:
    deployment_id = start_deployment(world.codedeploy)
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    record = destination_record(
        deployment_id,
        execution_id,
        POST_HOOK,
        "RetriesExhausted",
        {"errorMessage": "Runtime exited with error"},
    )

    reporter_app.lambda_handler(record, lambda_context)

    assert world.reported(deployment_id, execution_id) == "Failed"


def test_the_destination_skips_a_record_without_a_hook_event(world: World, lambda_context: Any) -> None:
    record = destination_record("d-ABCDEFGHI", "x", PRE_HOOK, "RetriesExhausted", None)
    record["requestPayload"] = {"hello": "world"}

    result = reporter_app.lambda_handler(record, lambda_context)

    assert result["status"] == "Skipped"
    assert world.codedeploy.calls_to("put_lifecycle_event_hook_execution_status") == []


# --- failing closed ------------------------------------------------------------------------------
def test_a_deployment_of_rollouts_application_without_a_release_fails(
    world: World, lambda_context: Any
) -> None:
    # Someone ran a deployment in Rollout's own application by hand: no release, no validated checks.
    deployment_id = start_deployment(world.codedeploy, description="hotfix by hand")
    world.target.answer("2", "health", ok("2"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Failed"
    assert world.statuses(deployment_id) == ["Failed"]
    assert "names no release in the ledger" in result["reason"]
    assert world.target.calls == []


def test_a_hook_that_does_not_know_rollouts_application_fails_a_deployment_without_a_release(
    world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without CODEDEPLOY_APPLICATION the hook cannot tell Rollout's deployments from other tools': one
    # naming no release must not pass as another tool's, untested.
    monkeypatch.setenv("CODEDEPLOY_APPLICATION", "")
    deployment_id = start_deployment(world.codedeploy, description="hotfix by hand")
    world.target.answer("2", "", ok("2"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    assert "CODEDEPLOY_APPLICATION" in result["reason"]


def release_the_index_does_not_know(world: World) -> tuple[Release, str]:
    """A release whose deployment the by-deployment index cannot find yet."""
    release, deployment_id = world.release({"pre_traffic": [HEALTH]})
    world.ledger.update(release.function, release.release_id, deployment_id="")
    assert world.ledger.by_deployment(deployment_id) is None
    return release, deployment_id


def test_the_release_is_found_by_its_id_before_the_deployment_index_knows_it(
    world: World, lambda_context: Any
) -> None:
    # The hook can run before the starter records the deployment id on the release (an
    # eventually consistent index on AWS): the description names the release, read by key.
    _, deployment_id = release_the_index_does_not_know(world)
    world.target.answer("2", "health", reply("2", {"statusCode": 500}))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Failed", "the release's own checks ran"
    assert [(q, e["path"]) for _, q, e in world.target.calls] == [("2", "/health")]


def test_the_destination_records_why_before_the_deployment_index_knows_the_deployment(
    world: World, lambda_context: Any
) -> None:
    # A hook can die a moment after its deployment started, while the by-deployment index still
    # trails the table: the deployment's description names the release, so the reason is not lost.
    release, deployment_id = release_the_index_does_not_know(world)
    execution_id = world.codedeploy.new_hook_execution(deployment_id)
    record = destination_record(
        deployment_id, execution_id, PRE_HOOK, "RetriesExhausted", {"errorMessage": "Runtime exited"}
    )

    reporter_app.lambda_handler(record, lambda_context)

    assert world.reported(deployment_id, execution_id) == "Failed"
    stored = world.stored(release)
    assert stored.reason == "pre-traffic hook failed without reporting (RetriesExhausted): Runtime exited"
    pre = stored.hook_results["pre_traffic"]
    assert (pre["verdict"], pre["reported"], pre["execution_id"]) == ("Failed", True, execution_id)


def test_a_description_naming_another_version_fails(world: World, lambda_context: Any) -> None:
    release, first = world.release({"pre_traffic": [HEALTH]}, current="1", target="2")
    world.codedeploy.finish(first, "Stopped")
    description = release_description(release.release_id, release.key)
    other = start_deployment(world.codedeploy, "1", "3", description=description)

    result, _ = run_pre(world, other, lambda_context)

    assert result["status"] == "Failed"
    assert "targets orders-api version 3, but release" in result["reason"]
    assert world.target.calls == []


def test_a_deployment_of_a_release_that_ended_without_it_fails(world: World, lambda_context: Any) -> None:
    # An upload whose attempts all died was given up (FAILED) with no deployment recorded, but one
    # attempt had created this deployment: passed, v2 would go live under a release that says it failed.
    release, deployment_id = world.release({"pre_traffic": [HEALTH]}, current="1", target="2")
    world.target.answer("2", "health", ok("2"))
    world.ledger.transition(
        world.stored(release),
        State.FAILED,
        deployment_id="",
        reason_code="PROCESSING_ABANDONED",
        reason="given up after 3 attempts",
    )

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Failed"
    assert (
        f"already ended FAILED (PROCESSING_ABANDONED) without recording deployment {deployment_id}"
        in (result["reason"])
    )
    assert world.target.calls == []


def test_a_second_deployment_copying_a_releases_description_fails(world: World, lambda_context: Any) -> None:
    # The release started (and stopped) its own deployment; another one of the same versions copies its
    # description. That deployment is not the release's: its hooks never pass it on the release's word.
    release, first = world.release({"pre_traffic": [HEALTH]}, current="1", target="2")
    world.codedeploy.finish(first, "Stopped")
    world.target.answer("2", "health", ok("2"))
    description = release_description(release.release_id, release.key)
    other = start_deployment(world.codedeploy, "1", "2", description=description)

    result, _ = run_pre(world, other, lambda_context)

    assert result["status"] == "Failed"
    assert f"whose own deployment is {first}" in result["reason"]
    assert world.target.calls == []
    # The copy's failure is not the release's: its own record is left as it was.
    stored = world.stored(release)
    assert (stored.hook_results, stored.reason_code, stored.reason) == ({}, "", "")


def test_the_pre_traffic_hook_never_answers_for_the_after_allow_traffic_step(
    world: World, lambda_context: Any
) -> None:
    release, deployment_id = world.release({"pre_traffic": [HEALTH], "post_traffic": [HEALTH]})
    world.target.answer("2", "health", ok("2"))
    # AfterAllowTraffic is running; someone hands its execution id to the pre-traffic hook.
    world.codedeploy.at_event(deployment_id, "AfterAllowTraffic")
    execution_id = world.codedeploy.new_hook_execution(deployment_id)

    result = pre_app.lambda_handler(hook_event(deployment_id, execution_id), lambda_context)

    assert result["status"] == "Refused"
    assert "BeforeAllowTraffic is Succeeded, not InProgress" in result["reason"]
    assert world.statuses(deployment_id) == []
    assert world.target.calls == []
    assert "pre_traffic" not in world.stored(release).hook_results


def test_the_post_traffic_hook_never_answers_before_traffic_moved(world: World, lambda_context: Any) -> None:
    _, deployment_id = world.release({"post_traffic": [HEALTH]})
    execution_id = world.codedeploy.new_hook_execution(deployment_id)

    result = post_app.lambda_handler(hook_event(deployment_id, execution_id), lambda_context)

    assert result["status"] == "Refused"
    assert "AfterAllowTraffic is Pending" in result["reason"]
    assert world.statuses(deployment_id) == []


def test_a_hook_answers_only_where_the_appspec_names_it(world: World, lambda_context: Any) -> None:
    release = Release(function=TARGET_FUNCTION, release_id=new_release_id(), key="k.zip", target_version="2")
    world.ledger.create(release)
    description = release_description(release.release_id, release.key)
    deployment_id = start_deployment(world.codedeploy, description=description, pre_hook="someone-elses-hook")
    world.codedeploy.at_event(deployment_id, "BeforeAllowTraffic")
    execution_id = world.codedeploy.new_hook_execution(deployment_id)

    result = pre_app.lambda_handler(hook_event(deployment_id, execution_id), lambda_context)

    assert result["status"] == "Refused"
    assert "names someone-elses-hook for BeforeAllowTraffic" in result["reason"]
    assert world.statuses(deployment_id) == []


def test_codedeploys_rollback_deployment_is_not_blocked(world: World, lambda_context: Any) -> None:
    _, failed = world.release({"pre_traffic": [HEALTH]}, current="1", target="2")
    world.codedeploy.finish(failed, "Failed")
    rollback = start_deployment(world.codedeploy, "2", "1")
    world.codedeploy.deployments[rollback].rollback_info = {"rollbackTriggeringDeploymentId": failed}
    world.codedeploy.at_event(rollback, "BeforeAllowTraffic")

    result, _ = run_pre(world, rollback, lambda_context)

    assert result["status"] == "Succeeded"
    assert "restores version 1" in result["reason"]
    assert world.target.calls == []


# --- approval gates ------------------------------------------------------------------------------
ALICE = {"kind": "aws", "id": ALICE_ARN}


@pytest.fixture(autouse=True)
def sts_vouches_for_alice(monkeypatch: pytest.MonkeyPatch) -> None:
    """STS (not reachable from moto) answers every identity proof with Alice's ARN; DeploymentActions
    knows the stack's roles (template.yaml), none of which is Alice."""
    monkeypatch.setattr(sts_ops, "send_signed", lambda headers, body: sts_answer(ALICE_ARN))
    monkeypatch.setenv(
        identity.ROLLOUT_ROLES_VARIABLE, "arn:aws:iam::123456789012:role/rollout-ReconcilerRole-1"
    )


def as_alice(event: dict[str, Any]) -> dict[str, Any]:
    """deployment_actions' invocation as `rollout approve/reject` makes it: with Alice's signed proof."""
    from rollout import approvals

    return approvals.handle({**event, "proof": signed_proof(event["action"], event["deployment_id"])})


def gated_release(world: World, lambda_context: Any) -> tuple[Release, str, str, dict[str, Any]]:
    """A release whose pre-traffic checks passed and whose gate before traffic opened: (release,
    deployment id, hook execution id, the hook's answer)."""
    checks = {"pre_traffic": [HEALTH], "approval": {"before": "traffic", "timeout_minutes": 10}}
    release, deployment_id = world.release(checks, current="6", target="7")
    world.target.answer("7", "health", ok("7"))
    result, execution_id = run_pre(world, deployment_id, lambda_context)
    return release, deployment_id, execution_id, result


def test_a_gate_holds_the_report_until_deployment_actions_answers_it_once(
    world: World, lambda_context: Any
) -> None:
    release, deployment_id, execution_id, result = gated_release(world, lambda_context)

    assert result["status"] == "AwaitingApproval"
    assert world.statuses(deployment_id) == []  # nothing reported while the gate waits
    stored = world.stored(release)
    assert stored.approval is not None
    assert stored.approval["status"] == "AWAITING" and stored.approval["execution_id"] == execution_id
    assert stored.hook_results["pre_traffic"]["awaiting_approval"] is True
    # A repeated invocation of the same execution neither tests again nor reports.
    tested = len(world.target.calls)
    again = pre_app.lambda_handler(hook_event(deployment_id, execution_id), lambda_context)
    assert again["status"] == "AwaitingApproval"
    assert world.statuses(deployment_id) == [] and len(world.target.calls) == tested

    answer = as_alice({"action": "approve", "deployment_id": deployment_id, "by": ALICE})
    assert answer["ok"] and answer["verdict"] == "Succeeded", answer
    assert world.statuses(deployment_id) == ["Succeeded"]
    assert world.reported(deployment_id, execution_id) == "Succeeded"
    gate = world.stored(release).approval or {}
    assert gate["status"] == "APPROVED" and gate["answered_by"]["id"] == ALICE["id"] and gate["reported"]

    # Answered once: a second answer is refused and reports nothing.
    refused = as_alice(
        {"action": "reject", "deployment_id": deployment_id, "by": ALICE, "text": "changed my mind"}
    )
    assert refused["ok"] is False and refused["refused"] == "nothing_to_do"
    assert "already answered: approved by" in refused["reason"]
    after = pre_app.lambda_handler(hook_event(deployment_id, execution_id), lambda_context)
    assert after["status"] == "AlreadyReported" and world.statuses(deployment_id) == ["Succeeded"]


def test_an_approval_after_codedeploy_closed_the_step_says_so_not_that_it_reported(
    world: World, lambda_context: Any
) -> None:
    # The failure reporter (or CodeDeploy's one-hour limit) closed the step Failed before the answer came:
    # the approval is recorded, nothing more is reported, and the answer does not claim CodeDeploy took it.
    from rollout import codedeploy_ops

    release, deployment_id, execution_id, result = gated_release(world, lambda_context)
    assert result["status"] == "AwaitingApproval"
    codedeploy_ops.put_hook_status(deployment_id, execution_id, "Failed")

    answer = as_alice({"action": "approve", "deployment_id": deployment_id, "by": ALICE})

    assert answer["ok"] and answer["reported"] is False, answer
    assert "already closed this step with its own status" in answer["note"]
    assert world.reported(deployment_id, execution_id) == "Failed"  # CodeDeploy's status stands
    gate = world.stored(release).approval or {}
    assert gate["status"] == "APPROVED" and gate["reported"]  # nothing left for the reconciler to report


def test_a_rejected_gate_reports_failed_with_the_reason_on_the_release(
    world: World, lambda_context: Any
) -> None:

    checks = {"pre_traffic": [HEALTH], "approval": {"before": "traffic"}}
    release, deployment_id = world.release(checks, current="6", target="7")
    world.target.answer("7", "health", ok("7"))
    run_pre(world, deployment_id, lambda_context)

    answer = as_alice(
        {"action": "reject", "deployment_id": deployment_id, "by": ALICE, "text": "not during the sale"}
    )
    assert answer["ok"] and answer["verdict"] == "Failed", answer
    assert world.statuses(deployment_id) == ["Failed"]
    stored = world.stored(release)
    assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
    assert stored.reason == f"approval before traffic rejected by {ALICE['id']}: not during the sale"
    assert stored.hook_results["pre_traffic"]["verdict"] == "Failed"


class AnswererKilled(Exception):
    """DeploymentActions' invocation ended (a timeout, a crash) right after the ledger took the answer."""


def test_a_rejection_whose_answerer_died_before_reporting_is_reported_by_the_reconciler_with_its_reason(
    world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rollout import approvals, gate_sweep
    from rollout.config import Settings
    from rollout.deployment_facts import DeploymentFacts
    from rollout.reconcile import reconcile
    from rollout.release_queue import QueueEffects
    from rollout.transitions import ReleaseContext

    release, deployment_id, _, result = gated_release(world, lambda_context)
    assert result["status"] == "AwaitingApproval"
    assert [n["kind"] for n in world.stack.notifications()] == ["approval.requested"]
    recorded_answer = Ledger.answer_gate

    def answer_then_die(ledger: Ledger, *args: Any, **kwargs: Any) -> bool:
        recorded_answer(ledger, *args, **kwargs)
        raise AnswererKilled

    with monkeypatch.context() as dying:
        dying.setattr(Ledger, "answer_gate", answer_then_die)
        with pytest.raises(AnswererKilled):
            as_alice(
                {
                    "action": "reject",
                    "deployment_id": deployment_id,
                    "by": ALICE,
                    "text": "not during the sale",
                }
            )
    assert (
        world.statuses(deployment_id) == [] and (world.stored(release).approval or {})["status"] == "REJECTED"
    )

    # The reconciler's next run (minutes later: its open-releases index shows the answer by then) hands
    # the recorded answer back to DeploymentActions, which reports it.
    wait_for(
        lambda: [
            r
            for r in world.ledger.open_releases(State.DEPLOYING)
            if (r.approval or {}).get("status") == "REJECTED"
        ],
        timeout=30,
        what="the open-releases index to show the answer",
    )
    settings = Settings.from_env()
    answers: list[dict[str, Any]] = []
    counts = gate_sweep.sweep(
        ReleaseContext.from_settings(settings, world.ledger),
        "rollout-actions",
        lambda function, event: answers.append(approvals.handle(event)),
    )

    why = f"approval before traffic rejected by {ALICE_ARN}: not during the sale"
    assert counts["reported"] == 1 and world.statuses(deployment_id) == ["Failed"]
    (answer,) = answers
    assert (answer["ok"], answer["reported"], answer["reason"]) == (True, True, why), answer
    stored = world.stored(release)
    assert (stored.reason_code, stored.reason) == ("HOOK_EXECUTION_FAILURE", why)
    assert (stored.hook_results["pre_traffic"]["verdict"], stored.hook_results["pre_traffic"]["reason"]) == (
        "Failed",
        why,
    )
    announced = world.stack.notifications()[1:]
    assert [n["kind"] for n in announced] == ["approval.rejected"]
    assert announced[0]["approval"]["comment"] == "not during the sale"

    # CodeDeploy fails the deployment on that report and rolls back; its ending, settled by the
    # reconciler, says who rejected it and why.
    world.codedeploy.finish(
        deployment_id,
        "Failed",
        error_information={"code": "HOOK_EXECUTION_FAILURE", "message": "BeforeAllowTraffic failed"},
        rollback_info={"rollbackDeploymentId": "d-ROLLBACK1", "rollbackMessage": ""},
    )
    reconcile(world.ledger, settings, QueueEffects(), DeploymentFacts())

    ended = world.stored(release)
    assert ended.state == State.ROLLED_BACK and why in ended.reason, ended.reason
    ending = world.stack.notifications()[2:]
    assert [n["kind"] for n in ending] == ["deployment.rolled_back"] and why in ending[0]["reason"]["text"]


def test_a_gate_not_yet_due_cannot_be_expired_and_unknown_deployments_have_none(
    world: World, lambda_context: Any
) -> None:
    from rollout import approvals

    checks = {"pre_traffic": [HEALTH], "approval": {"before": "traffic"}}
    _, deployment_id = world.release(checks, current="6", target="7")
    world.target.answer("7", "health", ok("7"))
    run_pre(world, deployment_id, lambda_context)
    reconciler = {"kind": "rollout", "id": "reconciler"}

    early = approvals.handle({"action": "expire", "deployment_id": deployment_id, "by": reconciler})
    assert early["ok"] is False and "open until" in early["reason"]
    none = as_alice({"action": "approve", "deployment_id": "d-NOSUCHONE", "by": ALICE})
    assert none["ok"] is False and none["refused"] == "not_found"
    assert world.statuses(deployment_id) == []


def test_a_failing_check_never_opens_a_gate(world: World, lambda_context: Any) -> None:
    checks = {"pre_traffic": [HEALTH], "approval": {"before": "traffic"}}
    release, deployment_id = world.release(checks, current="6", target="7")
    world.target.answer("7", "health", reply("7", {"statusCode": 503}))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert result["status"] == "Failed" and world.statuses(deployment_id) == ["Failed"]
    assert world.stored(release).approval is None


def test_a_repeated_invocation_racing_an_answered_gate_reports_the_answer_not_its_tests(
    world: World, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:

    checks = {"pre_traffic": [HEALTH], "approval": {"before": "traffic"}}
    _, deployment_id = world.release(checks, current="6", target="7")
    world.target.answer("7", "health", ok("7"))
    _, execution_id = run_pre(world, deployment_id, lambda_context)
    rejected = as_alice({"action": "reject", "deployment_id": deployment_id, "by": ALICE, "text": "no"})
    assert rejected["ok"], rejected
    # The repeated invocation read the release before the first one wrote anything (no results, no
    # gate), so it tests again and passes; it must still report the rejection, never Succeeded.
    from rollout import hooks

    real_release_of = hooks.release_of

    def read_before_the_gate(ledger: Ledger, deployment: Any) -> Release | None:
        release = real_release_of(ledger, deployment)
        if release is not None:
            release.approval, release.hook_results = None, {}
        return release

    monkeypatch.setattr(hooks, "release_of", read_before_the_gate)
    again = pre_app.lambda_handler(hook_event(deployment_id, execution_id), lambda_context)
    assert again["status"] == "Failed"
    assert "Succeeded" not in world.statuses(deployment_id)


def test_a_deployment_outside_rollout_whose_checks_ask_for_a_person_fails(
    world: World, lambda_context: Any
) -> None:
    """Only a Rollout release can hold a gate (DeploymentActions answers Rollout's application alone):
    a tag's checks document that asks for a person must not pass without one."""
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket="team-checks")
    document = {"pre_traffic": [HEALTH], "approval": {"before": "traffic"}}
    s3.put_object(Bucket="team-checks", Key="orders/rollout.json", Body=json.dumps(document))
    tag_target({"rollout:checks": "s3://team-checks/orders/rollout.json"})
    deployment_id = start_deployment(world.codedeploy, "4", "5", application=EXTERNAL_APPLICATION)
    world.target.answer("5", "health", ok("5"))

    result, _ = run_pre(world, deployment_id, lambda_context)

    assert world.statuses(deployment_id) == ["Failed"]
    assert "asks for approval before traffic" in result["reason"]
