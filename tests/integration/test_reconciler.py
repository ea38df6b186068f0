"""The reconciler repairs what lost deployment events leave behind, with the event path's transitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from functions.reconciler import app
from rollout import deployment_events, release_queue
from rollout.deployment_facts import DeploymentFacts
from rollout.ledger import LOCK_SK, Ledger
from rollout.reconcile import reconcile
from rollout.release_queue import QueueEffects
from rollout.states import State
from tests.support.aws_stack import LEDGER_TABLE, REGION, StackUnderTest
from tests.support.codedeploy_standin import CodeDeployStandIn
from tests.support.release_world import ReleaseWorld


@pytest.fixture
def world(stack: StackUnderTest, codedeploy: CodeDeployStandIn) -> ReleaseWorld:
    created = ReleaseWorld(stack, codedeploy)
    created.managed_function("orders", versions=5, live="1")
    return created


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_queue, "START_RETRY_PAUSES", (0.0, 0.0))


def backdate_lock(function: str, minutes: int) -> None:
    stamp = (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")
    boto3.resource("dynamodb", region_name=REGION).Table(LEDGER_TABLE).update_item(
        Key={"pk": f"FN#{function}", "sk": LOCK_SK},
        UpdateExpression="SET acquired_at = :t",
        ExpressionAttributeValues={":t": stamp},
    )


def test_nothing_to_repair_changes_nothing(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    running = world.deploying("orders", "2")
    world.queued("orders", "3")
    stack.notifications()

    summary = app.lambda_handler({}, lambda_context)

    assert summary["settled"] == [] and summary["locks_released"] == [] and summary["errors"] == []
    assert summary["queue"]["started"] == []
    assert world.get(running).state == State.DEPLOYING
    assert world.ledger.get_lock("orders")["release_id"] == running.release_id
    assert stack.notifications()[-1]["kind"] == "release.queued"


def test_deploying_release_whose_success_event_was_lost_is_settled_and_the_queue_moves(
    world: ReleaseWorld, stack: StackUnderTest, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    finished = world.deploying("orders", "2")
    older = world.queued("orders", "3")
    newest = world.queued("orders", "4")
    world.succeed(finished)  # ... and the SUCCESS event never arrives
    seen = len(stack.notifications())

    summary = app.lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, lambda_context)

    assert [(s["release_id"], s["to"]) for s in summary["settled"]] == [(finished.release_id, "SUCCEEDED")]
    assert summary["queue"]["started"] == [newest.release_id]
    assert summary["queue"]["superseded"] == [older.release_id]
    assert world.get(finished).state == State.SUCCEEDED
    assert world.get(newest).state == State.DEPLOYING
    assert world.get(older).state == State.SUPERSEDED
    assert not set(finished.alarms) & set(world.alarm_names())
    kinds = [n["kind"] for n in stack.notifications()[seen:]]
    assert kinds == ["deployment.succeeded", "deployment.started", "release.superseded"]


def test_lost_failure_event_gets_the_same_reason_as_the_event_path(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    release = world.deploying("orders", "2")
    world.ledger.record_hook_result(
        "orders",
        release.release_id,
        "post_traffic",
        {
            "verdict": "Failed",
            "checks": [
                {
                    "name": "latency",
                    "verdict": "Failed",
                    "error": "took 4100 ms, limit 3000 ms",
                    "excerpt": "{}",
                }
            ],
            "reason": "",
        },
    )
    world.roll_back(
        release, "Failed", {"code": "HOOK_EXECUTION_FAILURE", "message": "AfterAllowTraffic failed"}
    )

    app.lambda_handler({}, lambda_context)

    stored = world.get(release)
    assert stored.state == State.ROLLED_BACK
    assert stored.reason == "post-traffic check 'latency' failed: took 4100 ms, limit 3000 ms; excerpt: {}"
    assert stack.notifications()[-1]["kind"] == "deployment.rolled_back"


def test_a_settled_release_is_judged_on_its_current_item_not_the_index_copy(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The open-releases index trails its table: read right after the hook recorded its verdict and
    # CodeDeploy failed the deployment, it still shows the release without the hook's result.
    release = world.deploying("orders", "2")
    index_copy = world.get(release)
    world.ledger.record_hook_result(
        "orders",
        release.release_id,
        "post_traffic",
        {"verdict": "Failed", "checks": [], "reason": "post-traffic canary: p99 duration 900 ms > 300 ms"},
    )
    world.roll_back(
        release, "Failed", {"code": "HOOK_EXECUTION_FAILURE", "message": "AfterAllowTraffic failed"}
    )
    monkeypatch.setattr(
        Ledger, "open_releases", lambda self, state=None: [index_copy] if state == State.DEPLOYING else []
    )

    app.lambda_handler({}, lambda_context)

    stored = world.get(release)
    assert stored.state == State.ROLLED_BACK
    assert stored.reason_code == "HOOK_EXECUTION_FAILURE"
    assert stored.reason == "post-traffic hook failed: post-traffic canary: p99 duration 900 ms > 300 ms"


def test_lock_held_by_a_release_that_already_ended_is_released_and_the_queue_starts(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    finished = world.deploying("orders", "2")
    queued = world.queued("orders", "3")
    # The release was settled but the process died before releasing its lock.
    world.succeed(finished)
    world.ledger.transition(finished, State.SUCCEEDED)

    summary = app.lambda_handler({}, lambda_context)

    assert summary["locks_released"] == [
        {
            "function": "orders",
            "release_id": finished.release_id,
            "why": "held by a release that ended SUCCEEDED",
        }
    ]
    assert summary["queue"]["started"] == [queued.release_id]
    assert world.get(queued).state == State.DEPLOYING
    assert world.ledger.get_lock("orders")["release_id"] == queued.release_id


def test_lock_whose_deployment_finished_settles_its_release(
    world: ReleaseWorld, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    release = world.received("orders", "2", current_version="1")
    # The start died after CreateDeployment and attaching it to the lock, before recording DEPLOYING.
    assert world.ledger.acquire_lock("orders", release.release_id)
    codedeploy.create_deployment_group(
        applicationName="rollout-test",
        deploymentGroupName="orders",
        serviceRoleArn=world.stack.codedeploy_role_arn,
    )
    deployment_id = codedeploy.create_deployment(
        applicationName="rollout-test",
        deploymentGroupName="orders",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}", "sha256": "1" * 64}},
    )["deploymentId"]
    world.ledger.attach_deployment("orders", release.release_id, deployment_id)
    codedeploy.finish(deployment_id, "Succeeded")
    world.point_alias("orders", "2")

    summary = app.lambda_handler({}, lambda_context)

    stored = world.get(release)
    assert stored.state == State.SUCCEEDED
    assert [h["state"] for h in stored.history] == ["RECEIVED", "DEPLOYING", "SUCCEEDED"]
    assert summary["settled"][0]["to"] == "SUCCEEDED"
    assert world.ledger.get_lock("orders") is None


def test_lock_without_a_deployment_is_kept_during_the_grace_period_then_released(
    world: ReleaseWorld, lambda_context: Any
) -> None:
    stuck = world.received("orders", "2")
    world.ledger.transition(stuck, State.QUEUED)
    assert world.ledger.acquire_lock("orders", stuck.release_id)  # a start that died before CreateDeployment

    first = app.lambda_handler({}, lambda_context)
    assert first["locks_released"] == [] and first["queue"]["started"] == []
    assert world.get(stuck).state == State.QUEUED

    backdate_lock("orders", minutes=30)
    second = app.lambda_handler({}, lambda_context)

    assert second["locks_released"][0]["why"] == "no deployment started within the grace period"
    assert second["queue"]["started"] == [stuck.release_id]
    assert world.get(stuck).state == State.DEPLOYING


def test_a_lock_its_release_took_again_after_the_reconciler_read_it_is_kept(
    world: ReleaseWorld, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck = world.received("orders", "2")
    world.ledger.transition(stuck, State.QUEUED)
    assert world.ledger.acquire_lock("orders", stuck.release_id)
    backdate_lock("orders", minutes=30)
    as_read = world.ledger.locks()  # the reconciler's scan: no deployment for 30 minutes
    assert world.ledger.acquire_lock("orders", stuck.release_id)  # meanwhile its start takes it again
    taken = world.ledger.get_lock("orders")
    monkeypatch.setattr(Ledger, "locks", lambda self: as_read)

    summary = app.lambda_handler({}, lambda_context)

    assert summary["locks_released"] == []
    assert world.ledger.get_lock("orders") == taken


def test_queued_release_with_no_lock_and_no_deployment_is_started(
    world: ReleaseWorld, stack: StackUnderTest, lambda_context: Any
) -> None:
    finished = world.deploying("orders", "2")
    queued = world.queued("orders", "3")
    world.succeed(finished)
    world.ledger.transition(finished, State.SUCCEEDED)
    world.ledger.release_lock("orders", finished.release_id)  # the event path died before the queue step

    summary = app.lambda_handler({}, lambda_context)

    assert summary["queue"]["started"] == [queued.release_id]
    assert world.get(queued).state == State.DEPLOYING


def test_queued_release_waits_while_codedeploy_runs_a_deployment_rollout_did_not_start(
    world: ReleaseWorld, codedeploy: CodeDeployStandIn, lambda_context: Any
) -> None:
    finished = world.deploying("orders", "2")
    queued = world.queued("orders", "3")
    world.succeed(finished)
    world.ledger.transition(finished, State.SUCCEEDED)
    world.ledger.release_lock("orders", finished.release_id)
    codedeploy.create_deployment(  # e.g. someone deploying with the AWS CLI
        applicationName="rollout-test",
        deploymentGroupName="orders",
        revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": "{}", "sha256": "2" * 64}},
    )

    summary = app.lambda_handler({}, lambda_context)

    assert summary["queue"]["started"] == []
    assert summary["queue"]["waiting"] == [queued.release_id]
    assert world.get(queued).state == State.QUEUED
    assert world.ledger.get_lock("orders") is None


def test_deploying_release_codedeploy_has_never_heard_of_fails_after_the_grace_period(
    world: ReleaseWorld, stack: StackUnderTest, codedeploy: CodeDeployStandIn
) -> None:
    release = world.deploying("orders", "2")
    del codedeploy.deployments[release.deployment_id]
    ledger, settings = Ledger(LEDGER_TABLE), world.settings
    effects = QueueEffects.default()

    early = reconcile(ledger, settings, effects, DeploymentFacts())
    assert early.settled == [] and world.get(release).state == State.DEPLOYING

    later = reconcile(
        ledger, settings, effects, DeploymentFacts(), now=datetime.now(UTC) + timedelta(hours=1)
    )

    stored = world.get(release)
    assert (stored.state, stored.reason_code) == (State.FAILED, "DEPLOYMENT_LOST")
    assert release.deployment_id in stored.reason
    assert later.settled[0]["to"] == "FAILED"
    assert world.ledger.get_lock("orders") is None
    assert stack.notifications()[-1]["kind"] == "deployment.failed"


def test_a_broken_step_is_reported_and_the_others_still_run(
    world: ReleaseWorld, codedeploy: CodeDeployStandIn, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    finished = world.deploying("orders", "2")
    queued = world.queued("orders", "3")
    world.succeed(finished)
    world.ledger.transition(finished, State.SUCCEEDED)
    world.ledger.release_lock("orders", finished.release_id)

    def unavailable(**_: Any) -> dict[str, Any]:
        raise ConnectionError("CodeDeploy unreachable")

    monkeypatch.setattr(DeploymentFacts, "deployments", lambda self, ids: unavailable())
    summary = app.lambda_handler({}, lambda_context)

    assert summary["errors"] == ["settle finished deployments: CodeDeploy unreachable"]
    assert summary["queue"]["started"] == [queued.release_id]


def emitted_metrics(out: str) -> dict[str, float]:
    """Metric values in the Embedded Metric Format lines Powertools printed."""
    found: dict[str, float] = {}
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                found[metric["Name"]] = float(value[0] if isinstance(value, list) else value)
    return found


def test_one_bad_item_is_counted_and_the_rest_of_each_loop_still_runs(
    world: ReleaseWorld,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world.managed_function("payments", versions=3, live="1")
    poisoned = world.deploying("orders", "2")
    healthy = world.deploying("payments", "2")
    world.succeed(poisoned)
    world.succeed(healthy)
    real_apply = deployment_events.apply_state

    def apply_state(release: Any, *args: Any, **kwargs: Any) -> Any:
        if release.release_id == poisoned.release_id:
            raise ValueError("item the ledger cannot read")
        return real_apply(release, *args, **kwargs)

    # The reconciler imports apply_state when it has something to settle: patch it where it lives.
    monkeypatch.setattr(deployment_events, "apply_state", apply_state)
    capsys.readouterr()

    summary = app.lambda_handler({}, lambda_context)

    assert [s["release_id"] for s in summary["settled"]] == [healthy.release_id]
    assert world.get(healthy).state == State.SUCCEEDED
    assert world.get(poisoned).state == State.DEPLOYING
    # The poisoned release's lock is looked at again by the lock loop, which fails on it too: two items.
    assert summary["items_failed"] == 2
    assert summary["errors"] == [
        f"settle release orders/{poisoned.release_id}: ValueError: item the ledger cannot read",
        f"repair lock orders/{poisoned.release_id}: ValueError: item the ledger cannot read",
    ]
    assert emitted_metrics(capsys.readouterr().out)["ReconcilerItemsFailed"] == 2
