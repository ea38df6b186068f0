"""transitions.move against moto: the one way a release changes state, and the announce policy."""

from __future__ import annotations

import json

import pytest

from rollout.config import Settings
from rollout.errors import TransitionRefused
from rollout.ledger import Ledger, Release, new_release_id
from rollout.notifications import Notifier
from rollout.observability import metrics
from rollout.states import ReasonCode, State
from rollout.transitions import ReleaseContext, fail, move
from tests.support.aws_stack import LEDGER_TABLE, StackUnderTest


@pytest.fixture
def ctx(stack: StackUnderTest) -> ReleaseContext:
    return ReleaseContext.from_settings(Settings.from_env(), Ledger(LEDGER_TABLE))


def received(ctx: ReleaseContext) -> Release:
    return ctx.ledger.create(
        Release(function="orders", release_id=new_release_id(), bucket="b", key="orders/1.zip", alias="live")
    )


def metrics_emitted(out: str) -> dict[str, list[float]]:
    found: dict[str, list[float]] = {}
    for line in out.splitlines():
        if '"_aws"' in line:
            document = json.loads(line)
            for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
                found[definition["Name"]] = document[definition["Name"]]
    return found


def test_a_move_is_recorded_then_announced_with_the_kind_for_the_transition(
    ctx: ReleaseContext, stack: StackUnderTest
) -> None:
    release = received(ctx)

    queued = move(ctx, release, State.QUEUED, reason_code=ReasonCode.WAITING, reason="busy")
    failed = move(ctx, queued, State.FAILED, reason_code=ReasonCode.START_FAILED, reason="no role")

    assert ctx.ledger.get("orders", release.release_id) == failed
    assert [h["state"] for h in failed.history] == ["RECEIVED", "QUEUED", "FAILED"]
    assert stack.kinds() == ["release.queued", "release.failed"]
    assert stack.notifications()[-1]["reason"] == {"code": "START_FAILED", "text": "no role"}


def test_failing_a_deploying_release_announces_a_failed_deployment(
    ctx: ReleaseContext, stack: StackUnderTest
) -> None:
    deploying = move(ctx, received(ctx), State.DEPLOYING, deployment_id="d-ABCDEFGHI")

    move(ctx, deploying, State.FAILED, reason_code=ReasonCode.DEPLOYMENT_LOST, reason="gone")

    assert stack.kinds() == ["deployment.started", "deployment.failed"]


def test_a_refused_move_raises_and_announces_nothing(ctx: ReleaseContext, stack: StackUnderTest) -> None:
    done = move(ctx, received(ctx), State.REJECTED, reason_code=ReasonCode.UNSAFE_ZIP, reason="bad")

    with pytest.raises(TransitionRefused):
        move(ctx, done, State.DEPLOYING)

    assert stack.kinds() == ["release.rejected"]


def test_a_failed_publish_keeps_the_recorded_state_and_is_counted(
    ctx: ReleaseContext, stack: StackUnderTest, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = ctx._replace(notifier=Notifier(stack.topic_arn + "-missing", ctx.notifier.region))
    release = received(ctx)

    queued = move(broken, release, State.QUEUED, reason_code=ReasonCode.WAITING, reason="busy")
    metrics.flush_metrics()

    stored = ctx.ledger.get("orders", release.release_id)
    assert stored is not None
    assert queued.state == stored.state == State.QUEUED
    assert stack.kinds() == []
    assert metrics_emitted(capsys.readouterr().out)["NotificationsFailed"] == [1.0]


def test_a_start_failure_never_ends_a_release_another_invocation_deployed(
    ctx: ReleaseContext, stack: StackUnderTest
) -> None:
    release = received(ctx)
    move(ctx, release, State.DEPLOYING, deployment_id="d-ABCDEFGHI")

    after = fail(ctx, release, "could not start the deployment: boom")

    assert after.state == State.DEPLOYING
    assert stack.kinds() == ["deployment.started"]


def test_a_start_that_lost_the_race_to_another_start_of_the_same_release_returns_it_started(
    ctx: ReleaseContext, stack: StackUnderTest
) -> None:
    # An unfreeze and the reconciler both start one held release: CodeDeploy takes one deployment and
    # answers the other DeploymentLimitExceeded; that one must not crash trying to queue it.
    from rollout.starter import queue

    stale = received(ctx)
    started = move(ctx, stale, State.DEPLOYING, deployment_id="d-ABCDEFGHI")

    assert queue(ctx, stale, "CodeDeploy reports an active deployment for this function") == started
    assert ctx.ledger.get("orders", stale.release_id) == started
    assert stack.kinds()[-1] == "deployment.started"
