"""The fault matrix: every upload ends in a recorded state, whatever fails (docs/RELIABILITY.md).

Each cell bootstraps its own function on v1, injects one kind of fault, uploads, and checks the
same invariant (tests/support/fault_matrix.Cell): the release ends within the cell's bound, no lock
or open release is left, the alias has no split weights and serves a healthy build, and nothing was
deployed twice. Every injected fault is certain to fire at least once.

The cells marked `fault_matrix` run only with `--fault-matrix` (they take minutes); the others are
a representative subset that runs with every `pytest tests/e2e`.

At 60x a sandbox minute passes in a real second: a canary takes five real seconds and the
reconciler (every five sandbox minutes) runs every five real seconds. Lambda timeouts stay in real
seconds, so the deployer's is cut to DEPLOYER_TIMEOUT: a killed deployer's idempotency record
blocks a new attempt until its invocation's deadline, and the bound of that cell scales with it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from examples.hello.build import artifact_bytes
from rollout.ledger import Release
from sandbox.faults import CallFault
from tests.support.e2e_world import E2E_CHECKS, RolloutWorld, wait_for
from tests.support.fault_matrix import Cell, at_least_once, deployments_by_release, fired

pytestmark = pytest.mark.e2e
matrix_only = pytest.mark.fault_matrix

SPEED = 60.0
DEPLOYER_TIMEOUT = 40  # real seconds (the template's 300 s would make the killed-deployer cell wait 5 min)
HEALTHY_BOUND = 90.0  # real seconds for a release that needs no repair (canary 5 s, hooks, retries)
REPAIR_BOUND = 120.0  # ... one the reconciler repairs (runs every 5 s; lost uploads wait 2 sandbox min)


@pytest.fixture(scope="module", autouse=True)
def short_deployer_timeout(world: RolloutWorld) -> Iterator[None]:
    lam = world.client("lambda")
    deployer = world.outputs["ArtifactDeployerName"]
    lam.update_function_configuration(FunctionName=deployer, Timeout=DEPLOYER_TIMEOUT)
    lam.get_waiter("function_updated_v2").wait(
        FunctionName=deployer, WaiterConfig={"Delay": 1, "MaxAttempts": 60}
    )
    yield


class Cells:
    """Makes the test's cells and reports their figures when the test ends."""

    def __init__(self, world: RolloutWorld) -> None:
        self.world = world
        self.made: list[Cell] = []

    def __call__(self, name: str, function: str, bound_seconds: float, bound: str) -> Cell:
        cell = Cell(self.world, name, function, bound_seconds, bound)
        self.made.append(cell)
        return cell


@pytest.fixture
def cells(world: RolloutWorld) -> Iterator[Cells]:
    made = Cells(world)
    yield made
    for cell in made.made:
        cell.report()


def live_on_v1(world: RolloutWorld, prefix: str) -> str:
    """A new target function whose first release made the alias on a healthy v1."""
    function = world.create_target(prefix)
    first = world.wait_release(world.release_build(function, "healthy", "v1"))
    assert str(first.state) == "BOOTSTRAPPED", (first.reason_code, first.reason)
    return function


def uploads_of(function: str) -> dict[str, Any]:
    """An EventBridge pattern for the function's uploads."""
    return {"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": f"{function}/"}]}}}


def deployment_state(function: str, state: str) -> dict[str, Any]:
    return {"source": ["aws.codedeploy"], "detail": {"deploymentGroup": [function], "state": [state]}}


# --- hooks and targets ------------------------------------------------------------------------------


@matrix_only
@pytest.mark.parametrize("hook", ["PreTrafficHookName", "PostTrafficHookName"])
def test_a_hook_killed_before_it_reports_rolls_back(cells: Cells, world: RolloutWorld, hook: str) -> None:
    function = live_on_v1(world, "hookdies")
    cell = cells(f"{hook.removesuffix('Name')} worker killed", function, HEALTHY_BOUND, "one deployment")
    cell.inject(
        world.sb.faults.kill_on_call(
            world.outputs[hook], "codedeploy", "PutLifecycleEventHookExecutionStatus"
        )
    )
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert (str(release.state), release.reason_code) == ("ROLLED_BACK", "HOOK_EXECUTION_FAILURE")
    assert world.alias_version(function) == "1"


@matrix_only
def test_a_hook_killed_after_it_reported_changes_nothing(cells: Cells, world: RolloutWorld) -> None:
    function = live_on_v1(world, "hooklate")
    cell = cells("PreTrafficHook killed after reporting", function, HEALTHY_BOUND, "one deployment")
    pre = world.outputs["PreTrafficHookName"]
    cell.inject(
        world.sb.faults.kill_on_call(
            pre, "codedeploy", "PutLifecycleEventHookExecutionStatus", after_call=True
        )
    )
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    # It reported Succeeded before dying; the failure reporter then finds the event already reported.
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert world.alias_version(function) == release.target_version


def test_a_target_crashing_during_its_checks_rolls_back(cells: Cells, world: RolloutWorld) -> None:
    function = live_on_v1(world, "crash")
    cell = cells("target crash during checks", function, HEALTHY_BOUND, "one deployment")
    world.sb.faults.kill_worker(function, version="2", count=1, after_seconds=0.0)
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert (str(release.state), release.reason_code) == ("ROLLED_BACK", "HOOK_EXECUTION_FAILURE")
    check = release.hook_results["pre_traffic"]["checks"][0]
    assert "Runtime.ExitError" in check["error"] + check.get("excerpt", "")
    cell.figures["faults_fired"] = {"kill target v2 worker": 1}


@matrix_only
def test_a_target_timing_out_during_its_checks_rolls_back(cells: Cells, world: RolloutWorld) -> None:
    function = live_on_v1(world, "timeout")
    world.client("lambda").update_function_configuration(FunctionName=function, Timeout=1)
    world.client("lambda").get_waiter("function_updated_v2").wait(FunctionName=function)
    cell = cells("target timeout during checks", function, HEALTHY_BOUND, "one deployment")
    slow_checks = {
        **E2E_CHECKS,
        "pre_traffic": [{"name": "page", "event": {"path": "/"}, "max_duration_ms": 5000}],
    }
    data = artifact_bytes("slow", "v2", slow_ms=3000, checks=slow_checks)
    (release,) = cell.settle([world.upload(function, data)])
    assert (str(release.state), release.reason_code) == ("ROLLED_BACK", "HOOK_EXECUTION_FAILURE")
    assert "Sandbox.Timedout" in str(release.hook_results["pre_traffic"]["checks"][0])


def test_throttled_check_invocations_are_retried_not_rolled_back(cells: Cells, world: RolloutWorld) -> None:
    function = live_on_v1(world, "throttle")
    cell = cells("30% throttling of Invoke", function, HEALTHY_BOUND, "one deployment")
    cell.inject(
        at_least_once(
            world,
            "lambda",
            "Invoke",
            "TooManyRequestsException",
            0.3,
            429,
            path_contains=f"/functions/{function}/",
        )
    )
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    throttled = sum(
        check.get("throttled", 0)
        for hook in ("pre_traffic", "post_traffic")
        for check in release.hook_results[hook]["checks"]
    )
    assert throttled >= 1, release.hook_results
    cell.figures["checks_throttled"] = throttled


# --- control-plane calls failing ----------------------------------------------------------------


@matrix_only
@pytest.mark.parametrize(
    ("service", "operation", "code", "status"),
    [
        ("codedeploy", "CreateDeployment", "ThrottlingException", 400),
        ("lambda", "UpdateFunctionCode", "ServiceException", 500),
        ("lambda", "PublishVersion", "ServiceException", 500),
        ("sns", "Publish", "InternalError", 500),
    ],
)
def test_a_share_of_a_control_plane_call_failing_still_ends_the_release(
    cells: Cells, world: RolloutWorld, service: str, operation: str, code: str, status: int
) -> None:
    function = live_on_v1(world, operation.lower()[:10])
    cell = cells(f"30% failures of {operation}", function, HEALTHY_BOUND, "one deployment")
    cell.inject(at_least_once(world, service, operation, code, 0.3, status))
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)


# --- CreateDeployment served, its caller told it failed -------------------------------------------


def lost_create_answers(world: RolloutWorld, code: str, status: int, count: int) -> CallFault:
    """CodeDeploy creates the deployment, and the caller is answered `code` instead (at most `count`
    times: a second would be a resend)."""
    return world.sb.faults.fail(
        "codedeploy", "CreateDeployment", code, count=count, status=status, after_serving=True
    )


def assert_deployed_as_recorded(world: RolloutWorld, release: Release, recorded: list[str]) -> None:
    """The release went through `recorded` states, DEPLOYING on the one deployment that names it: never
    queued behind it nor failed while it ran."""
    assert [str(entry["state"]) for entry in release.history] == recorded
    assert deployments_by_release(world, release.function)[release.release_id] == [release.deployment_id]


def test_a_create_deployment_answered_an_error_after_it_created_the_deployment_is_the_releases_own(
    cells: Cells, world: RolloutWorld
) -> None:
    function = live_on_v1(world, "lostanswer")
    cell = cells("CreateDeployment served, answered 500", function, HEALTHY_BOUND, "one deployment")
    lost = lost_create_answers(world, "InternalFailure", 500, count=2)
    cell.inject(lost)
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert_deployed_as_recorded(world, release, ["RECEIVED", "DEPLOYING", "SUCCEEDED"])
    assert fired(lost) == 1, "not sent again once its deployment was found"


@matrix_only
def test_a_create_deployment_resent_after_a_throttle_and_answered_an_error_after_creating_is_the_releases_own(
    cells: Cells, world: RolloutWorld
) -> None:
    function = live_on_v1(world, "lostresend")
    cell = cells(
        "CreateDeployment throttled, then served and answered a throttle",
        function,
        HEALTHY_BOUND,
        "one deployment",
    )
    # The first request is refused before CodeDeploy acts; the resend creates the deployment and is
    # answered the throttle all the same. The deployment fails its check and rolls back within seconds.
    cell.inject(
        world.sb.faults.fail("codedeploy", "CreateDeployment", "ThrottlingException", count=1, status=400),
        lost_create_answers(world, "ThrottlingException", 400, count=2),
    )
    (release,) = cell.settle([world.release_build(function, "failing-check", "v2")])
    assert str(release.state) == "ROLLED_BACK", (release.reason_code, release.reason)
    assert_deployed_as_recorded(world, release, ["RECEIVED", "DEPLOYING", "ROLLED_BACK"])


@matrix_only
def test_a_queued_start_answered_an_error_after_create_deployment_is_recorded_and_the_queue_moves_on(
    cells: Cells, world: RolloutWorld
) -> None:
    function = live_on_v1(world, "lostqueued")
    cell = cells(
        "queued starts: CreateDeployment served, answered 500",
        function,
        2 * HEALTHY_BOUND,
        "three deployments",
    )
    deploying = world.release_build(function, "healthy", "v2")
    world.wait_release(deploying, state="DEPLOYING", timeout=HEALTHY_BOUND)
    queued = world.release_build(function, "healthy", "v3")
    world.wait_release(queued, state="QUEUED", timeout=HEALTHY_BOUND)
    # Aimed at the queue's starts: build 3's when build 2's deployment ends, build 4's after build 3's.
    lost = lost_create_answers(world, "InternalFailure", 500, count=2)
    cell.inject(lost)
    assert str((world.release_of(queued) or Release("", "")).state) == "QUEUED", "injected before it started"
    started = world.wait_release(queued, state="DEPLOYING", timeout=HEALTHY_BOUND)
    # Its deployment holds the function's lock while it runs, as any release's does.
    assert (world.lock(function) or {}).get("release_id") == started.release_id
    behind = world.release_build(function, "healthy", "v4")
    first, adopted, last = cell.settle([deploying, queued, behind])
    assert [str(r.state) for r in (first, adopted, last)] == ["SUCCEEDED"] * 3
    assert_deployed_as_recorded(world, adopted, ["RECEIVED", "QUEUED", "DEPLOYING", "SUCCEEDED"])
    assert fired(lost) == 2, "build 3's and build 4's starts each sent CreateDeployment once"
    assert world.version_code(function, world.alias_version(function)) == behind.code_sha256


def dynamodb_writes_failing(world: RolloutWorld, cell: Cell) -> None:
    for operation in ("PutItem", "UpdateItem", "DeleteItem"):
        cell.inject(
            at_least_once(world, "dynamodb", operation, "ProvisionedThroughputExceededException", 0.3, 400)
        )


@matrix_only
def test_a_share_of_dynamodb_writes_failing_still_ends_the_release(cells: Cells, world: RolloutWorld) -> None:
    function = live_on_v1(world, "ddb")
    cell = cells("30% failures of DynamoDB writes", function, REPAIR_BOUND, "one deployment + 2 runs")
    dynamodb_writes_failing(world, cell)
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)


@matrix_only
def test_two_uploads_50ms_apart_under_dynamodb_failures_leave_the_newest_live(
    cells: Cells, world: RolloutWorld
) -> None:
    function = live_on_v1(world, "burst")
    cell = cells("two uploads 50 ms apart, DynamoDB failing", function, 2 * REPAIR_BOUND, "two deployments")
    dynamodb_writes_failing(world, cell)
    older = world.release_build(function, "healthy", "v2")
    time.sleep(0.05)  # the cell is two uploads 50 ms apart: this is the gap under test, not a wait
    newer = world.release_build(function, "healthy", "v3")
    releases = cell.settle([older, newer])
    states = {str(r.state) for r in releases}
    assert str(releases[1].state) == "SUCCEEDED" and states <= {"SUCCEEDED", "SUPERSEDED"}, states
    assert world.version_code(function, world.alias_version(function)) == newer.code_sha256


# --- events lost, duplicated or undeliverable ---------------------------------------------------


def test_an_upload_whose_event_is_dropped_is_found_by_the_reconciler(
    cells: Cells, world: RolloutWorld
) -> None:
    function = live_on_v1(world, "dropup")
    cell = cells("upload event dropped", function, REPAIR_BOUND, "2 sandbox min + 2 runs + one deployment")
    cell.inject(world.sb.faults.drop_event(uploads_of(function)))
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert release.upload_order.endswith("|" + "0" * 32), "ordered as a build found late"


@matrix_only
def test_a_duplicated_upload_event_releases_once(cells: Cells, world: RolloutWorld) -> None:
    function = live_on_v1(world, "dupup")
    cell = cells("upload event duplicated", function, HEALTHY_BOUND, "one deployment")
    cell.inject(world.sb.faults.duplicate_event(uploads_of(function)))
    upload = world.release_build(function, "healthy", "v2")
    (release,) = cell.settle([upload])
    assert str(release.state) == "SUCCEEDED"
    assert [r.key for r in world.releases(function)].count(upload.key) == 1


def test_an_undeliverable_upload_event_is_replayed_from_the_dead_letter_queue(
    cells: Cells, world: RolloutWorld
) -> None:
    function = live_on_v1(world, "deadup")
    cell = cells("upload event dead-lettered", function, REPAIR_BOUND, "2 runs + one deployment")
    cell.inject(world.sb.faults.dead_letter_event(uploads_of(function)))
    (release,) = cell.settle([world.release_build(function, "healthy", "v2")])
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)


@matrix_only
@pytest.mark.parametrize(
    ("variant", "state", "outcome"),
    [("healthy", "SUCCESS", "SUCCEEDED"), ("failing-check", "FAILURE", "ROLLED_BACK")],
)
def test_a_dropped_deployment_ending_is_settled_by_the_reconciler(
    cells: Cells, world: RolloutWorld, variant: str, state: str, outcome: str
) -> None:
    function = live_on_v1(world, f"drop{state.lower()[:4]}")
    cell = cells(f"CodeDeploy {state} event dropped", function, REPAIR_BOUND, "one deployment + 2 runs")
    cell.inject(world.sb.faults.drop_event(deployment_state(function, state)))
    (release,) = cell.settle([world.release_build(function, variant, "v2")])
    assert str(release.state) == outcome, (release.reason_code, release.reason)


# --- the deployer dying ---------------------------------------------------------------------------


@matrix_only
def test_a_deployer_killed_mid_release_is_resumed_with_the_same_release(
    cells: Cells, world: RolloutWorld
) -> None:
    function = live_on_v1(world, "deployerdies")
    bound = DEPLOYER_TIMEOUT + 60 + REPAIR_BOUND  # its deadline, RESUME_AFTER, then a repair
    cell = cells("deployer killed mid-release", function, bound, "deployer timeout + 1 min + 2 runs")
    # Killed as it updates the code: RECEIVED recorded, the function's lock and publish lease held.
    cell.inject(
        world.sb.faults.kill_on_call(world.outputs["ArtifactDeployerName"], "lambda", "UpdateFunctionCode")
    )
    upload = world.release_build(function, "healthy", "v2")
    stuck = world.wait_release(upload, state="RECEIVED", timeout=30)
    (release,) = cell.settle([upload])
    assert release.release_id == stuck.release_id, "Lambda's retry and the resumption kept the release id"
    assert str(release.state) == "SUCCEEDED", (release.reason_code, release.reason)
    assert [r.key for r in world.releases(function)].count(upload.key) == 1


# --- people hear about what Rollout cannot repair -------------------------------------------------


def test_an_undelivered_event_nobody_replays_is_announced_on_the_operations_topic(
    world: RolloutWorld,
) -> None:
    queue_url = world.outputs["UndeliveredEventsQueueUrl"]
    # This module's earlier tests kill functions, and a killed invocation may leave its record in the
    # queue: start from an empty queue and a quiet alarm, or ALARM would already be on and never re-sent.
    # (Emptied by deleting, not PurgeQueue: SQS allows one purge a minute, which another test may have used.)
    sqs = world.client("sqs")

    def emptied() -> bool:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        counts = sqs.get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return all(int(v) == 0 for v in counts.values())

    wait_for(emptied, 60, "the undelivered-events queue to be empty before the test")
    alarm_name = f"{world.stack_name}-undelivered-events"
    cloudwatch = world.client("cloudwatch")
    wait_for(
        lambda: cloudwatch.describe_alarms(AlarmNames=[alarm_name])["MetricAlarms"][0]["StateValue"] == "OK",
        60,
        "the undelivered-events alarm to be OK before the test",
    )
    inbox = world.subscribe_operations()
    # A Slack post Lambda gave up on: the reconciler leaves it for a person.
    record = {
        "requestContext": {
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:slack-poster:$LATEST"
        },
        "requestPayload": {"Records": []},
    }
    world.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))
    alarm = wait_for(
        lambda: world.operations_message(inbox, "ALARM"),
        60,
        "the undelivered-events alarm on the operations topic",
    )
    assert alarm["AlarmName"] == f"{world.stack_name}-undelivered-events"
    wait_for(emptied, 60, "the operator to empty the queue")
    wait_for(lambda: world.operations_message(inbox, "OK"), 60, "the alarm to say the queue is empty again")


def test_a_rollback_that_fails_is_recorded_failed_and_announced_critical(world: RolloutWorld) -> None:
    function = live_on_v1(world, "rbfails")
    # CodeDeploy's rollback moves the alias back; make that UpdateAlias fail (the deployment itself
    # never moves the alias: its pre-traffic check fails first).
    refused = world.sb.faults.fail(
        "lambda",
        "UpdateAlias",
        "ResourceConflictException",
        count=20,
        path_contains=f"/functions/{function}/",
    )
    try:
        release = world.wait_release(
            world.release_build(function, "failing-check", "v2"), timeout=HEALTHY_BOUND
        )
        wait_for(
            lambda: str((world.release_of_id(function, release.release_id)).state) == "FAILED",
            30,
            "the rollback's failure to be recorded",
        )
    finally:
        world.sb.faults.clear()
    assert fired(refused) >= 1
    failed = world.release_of_id(function, release.release_id)
    assert failed.reason_code == "ROLLBACK_FAILED"
    assert "pre-traffic" in failed.reason and "then rollback deployment" in failed.reason
    notice = next(
        n
        for n in world.wait_notices(function, ["deployment.rollback_failed"])
        if n.kind == "deployment.rollback_failed"
    )
    assert notice.attributes["severity"] == "critical"
    assert world.alias_version(function) == "1" and world.alias_weights(function) == {}
    world.wait_unlocked(function)
