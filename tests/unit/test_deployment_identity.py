"""An event for a deployment that is not the release's own never ends the release.

`Ledger.of_deployment` finds a release from a deployment event by the by-deployment index, else by the
release id in the deployment's description. A description can be copied: into a deployment created by
hand in Rollout's application, a second deployment of one release, or (should CodeDeploy carry it over)
an automatic rollback, whose `rollbackInfo` names the deployment it rolls back. Applied to the release
a description names, such a deployment's SUCCESS would move a release whose own deployment still runs,
or was rolled back, to SUCCEEDED, release its lock, start the queue and announce it.
"""

from __future__ import annotations

from typing import Any

import pytest

from functions.deployment_events import app
from rollout import release_queue
from rollout.states import State
from tests.support.aws_stack import StackUnderTest
from tests.support.codedeploy_standin import CodeDeployStandIn, StandInDeployment
from tests.support.release_world import ReleaseWorld


@pytest.fixture
def world(stack: StackUnderTest, codedeploy: CodeDeployStandIn) -> ReleaseWorld:
    created = ReleaseWorld(stack, codedeploy)
    created.managed_function("orders", versions=5, live="1")
    return created


@pytest.fixture(autouse=True)
def _no_pauses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(release_queue, "START_RETRY_PAUSES", (0.0, 0.0))


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
