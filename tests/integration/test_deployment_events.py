"""deployment_events end to end: CodeDeploy state changes move releases, notify, and run the queue."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.deployment_events import app
from rollout import approvals, release_queue, slack, starter
from rollout.actions import rollback_target
from rollout.deployment_events import parse_state_change
from rollout.ledger import Ledger, Release
from rollout.states import State
from tests.support.aws_stack import StackUnderTest
from tests.support.codedeploy_standin import CodeDeployStandIn, StandInDeployment, client_error
from tests.support.release_world import ReleaseWorld


@pytest.fixture
def world(stack: StackUnderTest, codedeploy: CodeDeployStandIn) -> ReleaseWorld:
    created = ReleaseWorld(stack, codedeploy)
    created.managed_function("orders", versions=5, live="1")
    return created


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_queue, "START_RETRY_PAUSES", (0.0, 0.0))


def send(world: ReleaseWorld, release: Release, state: str, context: Any) -> dict[str, Any]:
    return app.lambda_handler(world.event(release.deployment_id, state, release.function), context)


def after_start(stack: StackUnderTest) -> list[dict[str, Any]]:
    """Notifications since the last call (the first call drains those of the set-up)."""
    before = len(stack.received)
    return stack.notifications()[before:]


def metrics_emitted(out: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in out.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found[definition["Name"]] = document[definition["Name"]]
    return found


def test_success_goes_live_releases_the_lock_and_deletes_the_canary_alarms(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    release = world.deploying("orders", "2")
    assert release.alarms and set(release.alarms) <= set(world.alarm_names())
    after_start(stack)
    world.succeed(release)

    result = send(world, release, "SUCCESS", lambda_context)

    stored = world.get(release)
    assert (result["from"], result["to"], stored.state) == ("DEPLOYING", "SUCCEEDED", State.SUCCEEDED)
    assert stored.completed_at
    assert world.ledger.get_lock("orders") is None
    assert not set(release.alarms) & set(world.alarm_names()), "per-release alarms are gone"
    [note] = after_start(stack)
    assert note["kind"] == "deployment.succeeded"
    assert note["_subject"] == "orders: v2 is live"
    assert note["versions"] == {"current": "1", "target": "2"}
    assert note["deployment_id"] == release.deployment_id
    assert note["commit"] == "c0ffee2" and note["author"] == "alice"
    assert note["_attributes"] == {
        "kind": "deployment.succeeded",
        "function": "orders",
        "severity": "success",
    }
    emitted = metrics_emitted(capsys.readouterr().out)
    assert emitted["DeploymentsSucceeded"] == [1.0] or emitted["DeploymentsSucceeded"] == 1.0
    assert "ReleaseDurationSeconds" in emitted


def test_failed_hook_rolls_back_with_the_failing_check_and_excerpt(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    world.ledger.record_hook_result(
        "orders",
        release.release_id,
        "pre_traffic",
        {
            "verdict": "Failed",
            "checks": [
                {
                    "name": "checkout",
                    "verdict": "Failed",
                    "duration_ms": 35,
                    "error": "statusCode: expected 200, got 502",
                    "excerpt": '{"statusCode": 502, "body": "upstream timeout"}',
                }
            ],
            "canary": None,
            "warnings": [],
            "reason": "check 'checkout' failed: statusCode: expected 200, got 502",
        },
    )
    after_start(stack)
    world.roll_back(
        release, "Failed", {"code": "HOOK_EXECUTION_FAILURE", "message": "BeforeAllowTraffic failed"}
    )

    send(world, release, "FAILURE", lambda_context)

    stored = world.get(release)
    assert stored.state == State.ROLLED_BACK
    assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
    assert stored.reason.startswith("pre-traffic check 'checkout' failed: statusCode: expected 200, got 502")
    assert "upstream timeout" in stored.reason
    [note] = after_start(stack)
    assert note["kind"] == "deployment.rolled_back"
    assert note["_subject"].startswith("orders: v2 rolled back to v1: pre-traffic check 'checkout'")
    assert note["reason"]["code"] == "HOOK_EXECUTION_FAILURE"
    assert "upstream timeout" in note["reason"]["text"]
    assert note["hook_results"]["pre_traffic"]["checks"][0]["name"] == "checkout"
    assert note["_attributes"]["severity"] == "error"


def test_alarm_stop_rolls_back_naming_the_alarm(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    alarm = release.alarms[0]
    after_start(stack)
    world.roll_back(
        release,
        "Stopped",
        {
            "code": "ALARM_ACTIVE",
            "message": f"One or more alarms have been activated: Activated alarms: {alarm}",
        },
    )

    send(world, release, "STOP", lambda_context)

    stored = world.get(release)
    assert (stored.state, stored.reason_code) == (State.ROLLED_BACK, "ALARM_ACTIVE")
    assert stored.reason == f"alarm {alarm} went into ALARM during the deployment"
    [note] = after_start(stack)
    assert note["kind"] == "deployment.rolled_back" and alarm in note["reason"]["text"]


def test_manual_stop_leaving_the_alias_split_is_a_failure(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    after_start(stack)
    world.codedeploy.stop_deployment(deploymentId=release.deployment_id, autoRollbackEnabled=False)
    world.point_alias("orders", "1", {"2": 0.1})

    send(world, release, "STOP", lambda_context)

    stored = world.get(release)
    assert (stored.state, stored.reason_code) == (State.FAILED, "MANUAL_STOP")
    assert "alias live: traffic split: v1 main, v2 10%" in stored.reason
    [note] = after_start(stack)
    assert note["kind"] == "deployment.failed"
    assert note["versions"] == {"current": "1", "target": "2"}


def test_failure_with_traffic_left_on_the_new_version_is_failed(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    world.codedeploy.finish(
        release.deployment_id,
        "Failed",
        error_information={"code": "INTERNAL_ERROR", "message": "Internal error"},
    )
    world.point_alias("orders", "2")

    send(world, release, "FAILURE", lambda_context)

    stored = world.get(release)
    assert (stored.state, stored.reason) == (State.FAILED, "Internal error (alias live: all traffic on v2)")


def test_duplicate_and_out_of_order_events_change_nothing(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    after_start(stack)
    send(world, release, "START", lambda_context)  # the deployer already recorded the start
    world.succeed(release)
    send(world, release, "SUCCESS", lambda_context)
    settled = world.get(release)

    send(world, release, "SUCCESS", lambda_context)  # duplicate delivery
    send(world, release, "START", lambda_context)  # late
    send(world, release, "FAILURE", lambda_context)  # contradicting and late
    send(world, release, "READY", lambda_context)

    final = world.get(release)
    assert final.state == State.SUCCEEDED
    assert final.history == settled.history
    assert [n["kind"] for n in after_start(stack)] == ["deployment.succeeded"]


def test_start_event_records_a_start_the_deployer_never_recorded(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.received("orders", "2", current_version="1")
    world.ledger.update("orders", release.release_id, deployment_id="d-LOSTSTART")
    release.deployment_id = "d-LOSTSTART"

    send(world, release, "START", lambda_context)

    stored = world.get(release)
    assert stored.state == State.DEPLOYING and stored.deploying_at
    assert [n["kind"] for n in stack.notifications()] == ["deployment.started"]


def test_deployments_rollout_did_not_start_and_malformed_events_are_ignored(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    foreign = world.event("d-NOTOURS12", "SUCCESS")
    assert app.lambda_handler(foreign, lambda_context) == {"ignored": "not a Rollout deployment"}
    other_app = world.event("d-NOTOURS34", "SUCCESS")
    other_app["detail"]["application"] = "someone-elses-app"
    assert app.lambda_handler(other_app, lambda_context) == {"ignored": "other application"}

    malformed: list[Any] = [
        {},
        [],
        "text",
        {"detail-type": "Object Created", "detail": {}},
        {"detail-type": "CodeDeploy Deployment State-change Notification"},
        {"detail-type": "CodeDeploy Deployment State-change Notification", "detail": {"state": "SUCCESS"}},
        {
            "detail-type": "CodeDeploy Deployment State-change Notification",
            "detail": {"deploymentId": "d-X", "state": "EXPLODED"},
        },
    ]
    for event in malformed:
        assert "skipped" in app.lambda_handler(event, lambda_context)
    assert stack.notifications() == []


def test_an_ending_starts_the_newest_queued_release_and_supersedes_older_ones(
    world: ReleaseWorld, stack: StackUnderTest, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    first = world.deploying("orders", "2")
    older = world.queued("orders", "3")
    newest = world.queued("orders", "4")
    after_start(stack)
    world.succeed(first)

    result = send(world, first, "SUCCESS", lambda_context)

    assert result["queue"] == {
        "started": [newest.release_id],
        "superseded": [older.release_id],
        "failed": [],
        "waiting": [],
        "starting_elsewhere": [],
        "adopted": [],
    }
    started = world.get(newest)
    assert started.state == State.DEPLOYING
    assert started.current_version == "2", "the alias is re-read when the queued release starts"
    assert world.ledger.get_lock("orders")["release_id"] == newest.release_id
    assert len(codedeploy.calls_to("create_deployment")) == 2
    superseded = world.get(older)
    assert superseded.state == State.SUPERSEDED
    assert newest.release_id in superseded.reason
    notes = after_start(stack)
    assert [n["kind"] for n in notes] == ["deployment.succeeded", "deployment.started", "release.superseded"]
    assert notes[2]["release_id"] == older.release_id
    assert notes[2]["superseded_by"] == newest.release_id
    assert notes[1]["versions"] == {"current": "2", "target": "4"}


def test_a_queued_release_older_than_the_one_that_went_out_never_deploys_over_it(
    world: ReleaseWorld, stack: StackUnderTest, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    first = world.deploying("orders", "2")
    older = world.queued("orders", "3")
    world.succeed(first)
    # The lock is free for a moment before the SUCCESS event is handled: a newer upload starts at once.
    world.ledger.release_lock("orders", first.release_id)
    newer = world.deploying("orders", "4")
    assert send(world, first, "SUCCESS", lambda_context)["queue"]["waiting"] == [older.release_id]
    world.succeed(newer)

    result = send(world, newer, "SUCCESS", lambda_context)

    assert result["queue"]["superseded"] == [older.release_id]
    assert result["queue"]["started"] == []
    assert world.get(older).state == State.SUPERSEDED
    assert newer.release_id in world.get(older).reason
    assert [c["deploymentGroupName"] for c in codedeploy.calls_to("create_deployment")] == [
        "orders",
        "orders",
    ]
    assert world.ledger.get_lock("orders") is None


def test_an_older_build_never_goes_out_over_a_newer_one_however_many_uploads_came_between(
    world: ReleaseWorld, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    """A start reads the function's newest releases by arrival; the build that went out can lie behind
    a hundred rejected uploads, and an older build found late must still not go out over it."""
    second, first = "2026-11-20T10:00:02.000Z|" + "0" * 32, "2026-11-20T10:00:01.000Z|" + "0" * 32
    newer = world.deploying("orders", "3", upload_order=second)
    world.succeed(newer)
    send(world, newer, "SUCCESS", lambda_context)
    for _ in range(101):  # uploads rejected since (a bad key, an unsafe zip): none went out
        world.received("orders", "", state=State.REJECTED)

    older = starter.start_release(world.context, world.received("orders", "2", upload_order=first))

    assert older.state == State.SUPERSEDED, (older.state, older.reason)
    assert newer.release_id in older.reason
    assert len(codedeploy.calls_to("create_deployment")) == 1
    assert world.alias("orders")["FunctionVersion"] == "3"

    # The release the OUT item names cannot be read (deleted by hand): it still went out, so an older
    # build found later is still superseded by it, not deployed.
    world.ledger._table.delete_item(Key={"pk": "FN#orders", "sk": f"REL#{newer.release_id}"})
    oldest = starter.start_release(world.context, world.received("orders", "1", upload_order=first))
    assert oldest.state == State.SUPERSEDED and newer.release_id in oldest.reason, oldest.reason
    assert len(codedeploy.calls_to("create_deployment")) == 1


def test_a_held_release_handed_to_the_start_path_is_left_held(
    world: ReleaseWorld, codedeploy: CodeDeployStandIn
) -> None:
    """Only a caller that moved a release out of HELD itself may start it (held_releases): the start
    path claims QUEUED releases only, so a HELD one handed to it would go on unclaimed."""
    held = world.received("orders", "", state=State.HELD, reason_code="FROZEN", reason="frozen: audit")

    outcome = starter.start_release(world.context, held)

    assert (outcome.state, outcome.reason_code) == (State.HELD, "FROZEN")
    assert world.get(held).state == State.HELD and world.ledger.get_lock("orders") is None
    assert codedeploy.calls_to("create_deployment") == []


def test_a_start_codedeploy_refuses_is_recorded_and_the_next_queued_release_starts(
    world: ReleaseWorld, stack: StackUnderTest, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    first = world.deploying("orders", "2")
    older = world.queued("orders", "3")
    newest = world.queued("orders", "4")
    after_start(stack)
    world.succeed(first)
    codedeploy.fail_next["create_deployment"] = [
        client_error("InvalidRoleException", "CodeDeploy cannot assume the service role", "CreateDeployment")
    ]

    result = send(world, first, "SUCCESS", lambda_context)

    failed = world.get(newest)
    assert failed.state == State.FAILED
    assert "CodeDeploy cannot assume the service role" in failed.reason
    assert world.get(older).state == State.DEPLOYING
    assert result["queue"]["failed"] == [newest.release_id]
    assert result["queue"]["started"] == [older.release_id]
    assert world.ledger.get_lock("orders")["release_id"] == older.release_id
    notes = after_start(stack)
    assert [n["kind"] for n in notes] == ["deployment.succeeded", "release.failed", "deployment.started"]
    assert "service role" in notes[1]["reason"]["text"]


def test_a_start_that_raises_is_retried(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.deploying("orders", "2")
    queued = world.queued("orders", "3")
    real_start = starter.start_release
    attempts: list[str] = []

    def flaky_start(ctx: Any, release: Release) -> Release:
        attempts.append(release.release_id)
        if len(attempts) < 3:
            raise ConnectionError("ledger unreachable")
        return real_start(ctx, release)

    monkeypatch.setattr(starter, "start_release", flaky_start)
    world.succeed(first)

    send(world, first, "SUCCESS", lambda_context)

    assert attempts == [queued.release_id] * 3
    assert world.get(queued).state == State.DEPLOYING


def test_a_start_that_keeps_raising_is_recorded_failed_never_dropped(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = world.deploying("orders", "2")
    queued = world.queued("orders", "3")
    after_start(stack)

    def broken_start(ctx: Any, release: Release) -> Release:
        ctx.ledger.acquire_lock(release.function, release.release_id)
        raise ConnectionError("ledger unreachable")

    monkeypatch.setattr(starter, "start_release", broken_start)
    world.succeed(first)

    send(world, first, "SUCCESS", lambda_context)

    stored = world.get(queued)
    assert (stored.state, stored.reason_code) == (State.FAILED, "START_FAILED")
    assert stored.reason == "could not start the deployment: ledger unreachable"
    assert world.ledger.get_lock("orders") is None, "a failed start never keeps the function locked"
    assert [n["kind"] for n in after_start(stack)] == ["deployment.succeeded", "release.failed"]


def test_the_end_of_codedeploys_rollback_deployment_starts_the_queue(
    world: ReleaseWorld, stack: StackUnderTest, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    first = world.deploying("orders", "2")
    queued = world.queued("orders", "3")
    codedeploy.finish(
        first.deployment_id,
        "Failed",
        error_information={"code": "HOOK_EXECUTION_FAILURE", "message": "hook failed"},
    )
    # CodeDeploy's rollback deployment is still running when the failure event arrives.
    rollback = codedeploy.create_deployment(
        applicationName="rollout-test",
        deploymentGroupName="orders",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}", "sha256": "0" * 64}},
    )["deploymentId"]
    codedeploy.deployments[first.deployment_id].rollback_info = {"rollbackDeploymentId": rollback}
    codedeploy.deployments[rollback].rollback_info = {"rollbackTriggeringDeploymentId": first.deployment_id}

    send(world, first, "FAILURE", lambda_context)
    assert world.get(first).state == State.ROLLED_BACK
    assert world.get(queued).state == State.QUEUED, "CodeDeploy still runs the rollback"

    codedeploy.finish(
        rollback, "Succeeded", rollback_info={"rollbackTriggeringDeploymentId": first.deployment_id}
    )
    result = app.lambda_handler(world.event(rollback, "SUCCESS"), lambda_context)

    assert result["rollback_of"] == first.release_id
    assert world.get(queued).state == State.DEPLOYING


@pytest.mark.parametrize("state", ["START", "SUCCESS", "FAILURE", "STOP"])
def test_sample_events_are_what_the_handler_reads(state: str) -> None:
    with open(f"events/codedeploy_{state.lower()}.json") as sample:
        change = parse_state_change(json.load(sample))
    assert (change.deployment_id, change.state, change.deployment_group) == ("d-7ZQ3K9WXY", state, "orders")


def failed_rollback(world: ReleaseWorld, codedeploy: CodeDeployStandIn, release: Release) -> str:
    """The deployment failed on a hook; CodeDeploy's rollback deployment then fails too, leaving a split."""
    codedeploy.finish(
        release.deployment_id,
        "Failed",
        error_information={"code": "HOOK_EXECUTION_FAILURE", "message": "AfterAllowTraffic failed"},
    )
    rollback = codedeploy.create_deployment(
        applicationName="rollout-test",
        deploymentGroupName=release.function,
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}", "sha256": "0" * 64}},
    )["deploymentId"]
    codedeploy.deployments[release.deployment_id].rollback_info = {"rollbackDeploymentId": rollback}
    codedeploy.finish(
        rollback,
        "Failed",
        error_information={"code": "INVALID_LAMBDA_CONFIGURATION", "message": "UpdateAlias was refused"},
        rollback_info={"rollbackTriggeringDeploymentId": release.deployment_id},
    )
    world.point_alias(release.function, "1", {"2": 0.1})
    return str(rollback)


def test_a_rollback_that_fails_turns_rolled_back_into_failed_and_is_announced_critical(
    world: ReleaseWorld,
    stack: StackUnderTest,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    release = world.deploying("orders", "2")
    after_start(stack)
    rollback = failed_rollback(world, codedeploy, release)
    send(world, release, "FAILURE", lambda_context)
    assert world.get(release).state == State.ROLLED_BACK, "rollback under way when the failure arrived"
    capsys.readouterr()

    result = app.lambda_handler(world.event(rollback, "FAILURE"), lambda_context)

    stored = world.get(release)
    assert (stored.state, stored.reason_code) == (State.FAILED, "ROLLBACK_FAILED")
    assert stored.reason.startswith("AfterAllowTraffic failed")
    assert f"then rollback deployment {rollback} failed: UpdateAlias was refused" in stored.reason
    assert stored.reason.endswith("(alias live: traffic split: v1 main, v2 10%)")
    assert result["rollback_of"] == release.release_id and result["state"] == "FAILED"
    notes = after_start(stack)
    assert [n["kind"] for n in notes] == ["deployment.rolled_back", "deployment.rollback_failed"]
    critical = notes[-1]
    assert critical["severity"] == critical["_attributes"]["severity"] == "critical"
    assert critical["rollback"] == {
        "deployment_id": rollback,
        "error": {"code": "INVALID_LAMBDA_CONFIGURATION", "message": "UpdateAlias was refused"},
    }
    assert critical["_subject"].startswith("orders: rollback of v2 failed, alias live may still route to it")
    assert metrics_emitted(capsys.readouterr().out)["RollbacksFailed"] == [1.0]


def test_a_failed_rollback_reported_before_its_deployment_ends_the_release_once(
    world: ReleaseWorld, stack: StackUnderTest, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    after_start(stack)
    rollback = failed_rollback(world, codedeploy, release)

    app.lambda_handler(world.event(rollback, "FAILURE"), lambda_context)
    send(world, release, "FAILURE", lambda_context)  # the deployment's own event, arriving second

    stored = world.get(release)
    assert (stored.state, stored.reason_code) == (State.FAILED, "ROLLBACK_FAILED")
    assert stored.reason.startswith(
        "AfterAllowTraffic failed; no hook result was recorded; then rollback deployment"
    )
    assert [h["state"] for h in stored.history] == ["RECEIVED", "DEPLOYING", "FAILED"]
    assert [n["kind"] for n in after_start(stack)] == ["deployment.rollback_failed"]
    assert world.ledger.get_lock("orders") is None


def test_a_rollback_ending_before_the_index_knows_its_deployment_still_finds_the_release(
    world: ReleaseWorld,
    stack: StackUnderTest,
    codedeploy: CodeDeployStandIn,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The by-deployment index trails the table on AWS: an event right after its deployment finds nothing
    # there, and the deployment's description (rollout release <id>: ...) names the release instead.
    release = world.deploying("orders", "2")
    rollback = failed_rollback(world, codedeploy, release)
    monkeypatch.setattr(Ledger, "by_deployment", lambda self, deployment_id: None)

    app.lambda_handler(world.event(rollback, "FAILURE"), lambda_context)

    stored = world.get(release)
    assert (stored.state, stored.reason_code) == (State.FAILED, "ROLLBACK_FAILED")


# --- an event for a deployment that is not the release's own never ends the release ------------------
# An event for a deployment that is not the release's own never ends the release.
#
# `Ledger.of_deployment` finds a release from a deployment event by the by-deployment index, else by the
# release id in the deployment's description. A description can be copied: into a deployment created by
# hand in Rollout's application, a second deployment of one release, or (should CodeDeploy carry it over)
# an automatic rollback, whose `rollbackInfo` names the deployment it rolls back. Applied to the release
# a description names, such a deployment's SUCCESS would move a release whose own deployment still runs,
# or was rolled back, to SUCCEEDED, release its lock, start the queue and announce it.


def _other_deployment(world: ReleaseWorld, own_id: str, status: str, **info: Any) -> str:
    """A deployment in the same group whose description names the same release."""
    own = world.codedeploy.deployments[own_id]
    other_id = "d-OTHER" + own_id[-4:]
    world.codedeploy.deployments[other_id] = StandInDeployment(
        other_id,
        own.application,
        own.group,
        own.revision,
        own.config,
        status=status,
        description=own.description,
        **info,
    )
    return other_id


def test_a_rollback_deployments_success_does_not_record_the_rolled_back_release_as_succeeded(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    # CodeDeploy stopped the deployment on an alarm and rolled the alias back with its own deployment;
    # the rollback's SUCCESS is delivered before the original's STOP (EventBridge does not order them).
    world.roll_back(release, "Stopped", {"code": "ALARM_ACTIVE", "message": "alarm fired"})
    rollback_id = _other_deployment(
        world,
        release.deployment_id,
        "Succeeded",
        rollback_info={"rollbackTriggeringDeploymentId": release.deployment_id},
    )
    before = len(stack.received)

    app.lambda_handler(world.event(rollback_id, "SUCCESS", "orders"), lambda_context)

    stored = world.get(release)
    kinds = [n["kind"] for n in stack.notifications()[before:]]
    assert stored.state != State.SUCCEEDED, (
        f"release of deployment {release.deployment_id} (rolled back) recorded SUCCEEDED from the "
        f"SUCCESS of deployment {rollback_id}; announced {kinds}"
    )
    assert "deployment.succeeded" not in kinds


def test_another_deployments_success_does_not_end_a_release_whose_deployment_still_runs(
    world: ReleaseWorld, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")  # its own deployment is InProgress
    other_id = _other_deployment(world, release.deployment_id, "Succeeded")

    app.lambda_handler(world.event(other_id, "SUCCESS", "orders"), lambda_context)

    stored = world.get(release)
    assert stored.state == State.DEPLOYING, (
        f"{stored.state}: a SUCCESS of {other_id} ended the release while its own deployment "
        f"{release.deployment_id} is still InProgress (lock held: {world.ledger.get_lock('orders')})"
    )


# CodeDeploy completes a deployment once every hook reported Succeeded, but a hook's own verdict may
# have lost the race to another status: a duplicate invocation of the same execution (Lambda's async
# queue may deliver an event twice) whose flaky check passed reported first, or someone holding the
# hooks' reporting permission. The release's record then says its hook failed it.
@pytest.mark.parametrize("hook", ["pre_traffic", "post_traffic"])
def test_a_success_whose_hook_recorded_failed_is_not_recorded_succeeded(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any, hook: str
) -> None:
    release = world.deploying("orders", "2")
    world.ledger.record_hook_result(
        "orders",
        release.release_id,
        hook,
        {
            "verdict": "Failed",
            "reason": f"{hook.replace('_', '-')} check 'checkout' failed against version 2: function error",
            "checks": [
                {"name": "checkout", "verdict": "Failed", "duration_ms": 20, "error": "function error"}
            ],
            "canary": None,
            "warnings": [],
            "deployment_id": release.deployment_id,
            "execution_id": "exec-1",
            "reported": True,
        },
    )
    after_start(stack)
    world.succeed(release)

    send(world, release, "SUCCESS", lambda_context)

    stored = world.get(release)
    kinds = [n["kind"] for n in after_start(stack)]
    assert stored.state == State.FAILED, (
        f"{stored.state} (announced {kinds}): version 2 went live although its {hook} hook recorded Failed"
    )
    assert stored.reason_code == "UNPROVEN_SUCCESS"
    assert "check 'checkout' failed" in stored.reason and "serves version 2" in stored.reason
    assert kinds == ["deployment.failed"]
    assert world.ledger.get_lock("orders") is None, "the function's lock is released all the same"


def test_a_version_live_unproven_is_rolled_back_from_its_slack_message_to_the_last_good_version(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    # The message's Roll back button, clicked, goes through deployment_actions as any click does; the
    # rollback returns to version 2, which went live properly, never to version 3, which went live
    # unproven, and a second rollback goes further back, not forward to 3.
    sha = {v: world.lambda_client.get_function(FunctionName="orders", Qualifier=v)["Configuration"]["CodeSha256"]
           for v in ("1", "2", "3")}  # fmt: skip
    world.received("orders", "1", state=State.BOOTSTRAPPED, code_sha256=sha["1"])
    good = world.deploying("orders", "2", code_sha256=sha["2"])
    world.succeed(good)
    send(world, good, "SUCCESS", lambda_context)
    bad = world.deploying("orders", "3", code_sha256=sha["3"])
    world.ledger.record_hook_result(
        "orders",
        bad.release_id,
        "post_traffic",
        {"verdict": "Failed", "reason": "post-traffic check 'x' failed"},
    )
    after_start(stack)
    world.succeed(bad)
    send(world, bad, "SUCCESS", lambda_context)

    [message] = after_start(stack)
    assert (message["kind"], message["reason"]["code"]) == ("deployment.failed", "UNPROVEN_SUCCESS")
    blocks = slack.render(message, interactive=True)["attachments"][0]["blocks"]
    [button] = [e for b in blocks if b.get("block_id") == "rollout-actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == ("rollout-rollback", bad.deployment_id)

    by = {"kind": "slack", "id": "U0OPS", "name": "alice"}
    click = {"action": "rollback", "deployment_id": button["value"], "by": by, "text": "rolled back"}
    answer = approvals.act(world.context, approvals.ActionRequest.parse(click))

    assert answer["ok"], answer
    assert (answer["from_version"], answer["target_version"]) == ("3", "2")
    rolled = world.ledger.get("orders", answer["release_id"])
    assert rolled is not None and rolled.state == State.DEPLOYING
    world.succeed(rolled)
    send(world, rolled, "SUCCESS", lambda_context)
    again = rollback_target(world.ledger.releases("orders"), world.alias("orders")["FunctionVersion"])
    assert again is not None and again.target_version == "1"
