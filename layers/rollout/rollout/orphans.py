"""Adopting a deployment that a start created but never recorded.

A start that dies (Lambda timeout, out of memory) after CreateDeployment and before the ledger
records DEPLOYING leaves a deployment no release names; so does a start whose CreateDeployment
raised although CodeDeploy created the deployment (the answer was lost: a 5xx, a throttle, a reset
connection; botocore's retry then meets that deployment as DeploymentLimitExceeded). Starting the
release again would deploy the same build twice, or queue it behind its own deployment forever, and
recording it FAILED would leave its deployment shifting traffic under a release that says it never
went out. So whoever carries the release on looks first for a deployment whose description names
the release (`rollout release <id>: ...`) and records the release DEPLOYING on it:

    the deployer        a RECEIVED upload's retry, after an earlier attempt died
    starter             a QUEUED release whose previous start claim expired (`claims.start_died`)
    starter             its own CreateDeployment raised (`deployment_of`, before it queues or fails)

Once recorded, the deployment's own events, or the reconciler's settling of finished deployments if
they already went by, end the release as usual: the same path whether it is still running or ended.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rollout import codedeploy_ops
from rollout.appspec import parse_appspec
from rollout.canary_alarms import CanaryScope, alarm_definitions
from rollout.errors import AppSpecError, TransitionRefused
from rollout.ledger import Release
from rollout.observability import logger
from rollout.states import State
from rollout.transitions import ReleaseContext, move

# This Lambda's clock and CodeDeploy's may disagree: look a little before the release arrived.
CLOCK_MARGIN = timedelta(minutes=5)


def adopt_orphaned_deployment(ctx: ReleaseContext, release: Release) -> Release | None:
    """DEPLOYING on a deployment a dead start of `release` created; None when there is none.

    The lock is taken (re-entrant: the dead start may still hold it) and names the deployment, so
    its ending releases the lock and starts the queue as for any deployment.
    """
    info = deployment_of(ctx, release)
    if info is None:
        return None
    deployment_id = str(info["deploymentId"])
    current, target = _appspec_versions(ctx.settings.codedeploy_application, info)
    target_version = target or release.target_version
    if ctx.ledger.acquire_lock(release.function, release.release_id):
        ctx.ledger.attach_deployment(release.function, release.release_id, deployment_id)
    logger.warning(
        "Adopting the deployment a start that died created",
        extra={"deployment_id": deployment_id, "status": info.get("status"), "state": str(release.state)},
    )
    try:
        return move(
            ctx,
            release,
            State.DEPLOYING,
            deployment_id=deployment_id,
            deployment_config=str(info.get("deploymentConfigName") or release.deployment_config),
            current_version=current or release.current_version,
            target_version=target_version,
            alarms=_canary_alarms(ctx, release, target_version),
            # A queued release no longer waits: drop the queue's reason, as a start does.
            reason_code="",
            reason="",
        )
    except TransitionRefused as refused:
        # Its own deployment event (or another caller) recorded it first.
        return refused.release or release


def _canary_alarms(ctx: ReleaseContext, release: Release, target_version: str) -> list[str]:
    """The canary alarms the dead start put before CreateDeployment (their names follow from the release):
    recorded, they are deleted when the release ends, as any release's are."""
    if not target_version:
        return list(release.alarms)
    scope = CanaryScope(release.function, release.alias, target_version)
    canary = (release.checks or {}).get("canary")
    names = [d["AlarmName"] for d in alarm_definitions(ctx.settings.canary_alarm_prefix, scope, canary)]
    return sorted(set(release.alarms) | set(names))


def deployment_of(ctx: ReleaseContext, release: Release) -> dict[str, Any] | None:
    """The newest deployment whose description names `release` (its deploymentInfo), or None.

    Raises when CodeDeploy cannot be asked: then whether one exists is not known.
    """
    found = codedeploy_ops.deployments_of_release(
        ctx.settings.codedeploy_application, release.function, release.release_id, _arrival(release)
    )
    return found[0] if found else None


def _arrival(release: Release) -> datetime | None:
    """When the release arrived, less a margin for clocks that disagree (this Lambda's and CodeDeploy's)."""
    try:
        arrived = datetime.fromisoformat(release.received_at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return arrived - CLOCK_MARGIN


def _appspec_versions(application: str, info: dict[str, Any]) -> tuple[str, str]:
    """(CurrentVersion, TargetVersion) of a deployment's AppSpec; blanks when it cannot be read."""
    try:
        spec = parse_appspec(codedeploy_ops.inline_appspec(application, info.get("revision") or {}))
    except (AppSpecError, KeyError, ValueError):
        logger.warning(
            "Could not read the adopted deployment's AppSpec",
            extra={"deployment_id": info.get("deploymentId")},
        )
        return "", ""
    return spec.current_version, spec.target_version
