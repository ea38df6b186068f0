"""CodeDeploy adapter: one deployment group per managed function (group name == function name)."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rollout import aws
from rollout.appspec import release_created_for
from rollout.errors import DeploymentLimitExceeded

ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST")
BATCH_GET_LIMIT = 25  # BatchGetDeployments takes at most 25 ids
ACTIVE_STATUSES = ["Created", "Queued", "InProgress", "Baking", "Ready"]
# CreateDeployment's answers that say nothing about whether an earlier attempt created the deployment:
# the group's running deployment may be that attempt's, and a throttle may follow a committed request.
NOT_REFUSALS = frozenset({"DeploymentLimitExceededException", "ThrottlingException"})
# IAM refusing the caller: a request is acted on only "after your request has been authenticated and
# authorized" (IAM User Guide, "Understanding how IAM works", "Actions or operations"), so it created
# nothing. Nor is it resent: the stack's grants are made when it is deployed, the "separate
# initialization or setup routine" AWS advises for IAM changes, which take time to become visible (IAM
# User Guide, "Troubleshooting general issues", "Changes that I make are not always immediately
# visible"); a refusal on the start path is a missing grant that a minute of resends would not add.
AUTHORIZATION_REFUSALS = frozenset({"AccessDeniedException"})
# CreateDeployment is sent at most this often for one start, the pauses between as botocore's standard
# mode takes them (a random share of 2^(attempt-1) s, at most 20 s: Boto3 guide, "Retries", "Standard
# retry mode"), the attempts as many as the clients' own configuration allows (aws.RETRY_CONFIG).
CREATE_ATTEMPTS = 10
CREATE_MAX_PAUSE = 20.0

sleep: Callable[[float], None] = time.sleep  # replaced in tests to observe the pauses


def desired_group(
    application: str, function: str, deployment_config: str, service_role_arn: str, alarms: list[str]
) -> dict[str, Any]:
    """CreateDeploymentGroup parameters for a managed function (pure)."""
    return {
        "applicationName": application,
        "deploymentGroupName": function,
        "deploymentConfigName": deployment_config,
        "serviceRoleArn": service_role_arn,
        "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        "autoRollbackConfiguration": {"enabled": True, "events": list(ROLLBACK_EVENTS)},
        "alarmConfiguration": {
            "enabled": bool(alarms),
            "ignorePollAlarmFailure": False,
            "alarms": [{"name": name} for name in alarms],
        },
    }


def group_differences(current: dict[str, Any], desired: dict[str, Any]) -> list[str]:
    """Names of the settings where the existing group differs from the desired one (pure)."""

    def normalised(info: dict[str, Any]) -> dict[str, Any]:
        rollback = info.get("autoRollbackConfiguration") or {}
        alarm_config = info.get("alarmConfiguration") or {}
        style = info.get("deploymentStyle") or {}
        return {
            "deploymentConfigName": info.get("deploymentConfigName"),
            "serviceRoleArn": info.get("serviceRoleArn"),
            "deploymentStyle": (style.get("deploymentType"), style.get("deploymentOption")),
            "autoRollbackConfiguration": (
                bool(rollback.get("enabled")),
                sorted(rollback.get("events") or []),
            ),
            "alarmConfiguration": (
                bool(alarm_config.get("enabled")),
                bool(alarm_config.get("ignorePollAlarmFailure")),
                sorted(a.get("name", "") for a in alarm_config.get("alarms") or []),
            ),
        }

    have, want = normalised(current), normalised(desired)
    return [name for name in want if have[name] != want[name]]


def ensure_deployment_group(desired: dict[str, Any]) -> str:
    """Create the group, or update it where it differs. Returns 'created', 'updated' or 'unchanged'."""
    codedeploy = aws.client("codedeploy")
    try:
        info = codedeploy.get_deployment_group(
            applicationName=desired["applicationName"], deploymentGroupName=desired["deploymentGroupName"]
        )["deploymentGroupInfo"]
    except Exception as exc:
        if aws.error_code(exc) != "DeploymentGroupDoesNotExistException":
            raise
        try:
            codedeploy.create_deployment_group(**desired)
            return "created"
        except Exception as create_exc:
            # Another invocation created it first: fall through and compare.
            if aws.error_code(create_exc) != "DeploymentGroupAlreadyExistsException":
                raise
        info = codedeploy.get_deployment_group(
            applicationName=desired["applicationName"], deploymentGroupName=desired["deploymentGroupName"]
        )["deploymentGroupInfo"]
    if not group_differences(info, desired):
        return "unchanged"
    update = {k: v for k, v in desired.items() if k != "deploymentGroupName"}
    update["currentDeploymentGroupName"] = desired["deploymentGroupName"]
    codedeploy.update_deployment_group(**update)
    return "updated"


def active_deployments(application: str, group: str) -> list[str]:
    """Deployments of the group CodeDeploy still runs (started by anyone)."""
    return _deployment_ids(
        {"applicationName": application, "deploymentGroupName": group, "includeOnlyStatuses": ACTIVE_STATUSES}
    )


def _deployment_ids(params: dict[str, Any]) -> list[str]:
    """Every page of ListDeployments (a page may come with a nextToken, botocore's codedeploy model: a
    start that missed a running deployment would publish before CreateDeployment refused it); none when
    the group does not exist yet (it is created with a function's first deployment)."""
    codedeploy = aws.client("codedeploy")
    ids: list[str] = []
    params = dict(params)
    try:
        while True:
            resp = codedeploy.list_deployments(**params)
            ids.extend(str(d) for d in resp.get("deployments", []))
            if not resp.get("nextToken"):
                return ids
            params["nextToken"] = resp["nextToken"]
    except Exception as exc:
        if aws.error_code(exc) == "DeploymentGroupDoesNotExistException":
            return []
        raise


def deployments_of_release(
    application: str, group: str, release_id: str, created_after: datetime | None = None
) -> list[dict[str, Any]]:
    """Deployments of the group created for `release_id` (told by their description), newest first.

    A start that died after CreateDeployment left one behind that the ledger does not name; the
    release's next attempt adopts it rather than deploying the same build a second time.
    `created_after` (the release's arrival) keeps the listing to the deployments that could be it.
    """
    params: dict[str, Any] = {"applicationName": application, "deploymentGroupName": group}
    if created_after is not None:
        params["createTimeRange"] = {"start": created_after}
    ids = _deployment_ids(params)
    found = [info for info in get_deployments(ids).values() if release_created_for(info) == release_id]
    return sorted(found, key=lambda info: str(info.get("createTime", "")), reverse=True)


def create_deployment(
    application: str, group: str, revision: dict[str, Any], deployment_config: str, description: str
) -> str:
    """One CreateDeployment request, never resent by the client: it takes no client token, so a resend
    after an error that followed the create would make a second deployment once the first has ended.
    The caller resends it, after looking for what this one created (`starter._create_or_find`)."""
    try:
        resp = aws.single_attempt_client("codedeploy").create_deployment(
            applicationName=application,
            deploymentGroupName=group,
            revision=revision,
            deploymentConfigName=deployment_config,
            description=description,
        )
    except Exception as exc:
        if aws.error_code(exc) == "DeploymentLimitExceededException":
            raise DeploymentLimitExceeded(group) from exc
        raise
    return str(resp["deploymentId"])


def traffic_routing(deployment_config: str) -> dict[str, Any] | None:
    """A deployment configuration's TrafficRoutingConfig (GetDeploymentConfig); None when it has none."""
    resp = aws.client("codedeploy").get_deployment_config(deploymentConfigName=deployment_config)
    return resp.get("deploymentConfigInfo", {}).get("trafficRoutingConfig")


def refused_outright(exc: BaseException) -> bool:
    """Whether CreateDeployment's error proves it created nothing: one of the refusals CodeDeploy models
    for it (botocore's codedeploy model, CreateDeployment's errors: invalid names, a missing group or
    revision...) or IAM's (`AUTHORIZATION_REFUSALS`), answered to the first and only attempt.

    Anything else may follow a deployment that was created: an answer lost after CodeDeploy
    committed (a 5xx, a throttle, a reset connection), or DeploymentLimitExceeded for the deployment an
    earlier attempt created. After a client's own retry (`RetryAttempts` above 0) even a refusal may
    follow such an attempt.
    """
    code = aws.error_code(exc)
    if not code or code in NOT_REFUSALS or code not in _create_refusals() | AUTHORIZATION_REFUSALS:
        return False
    metadata = getattr(exc, "response", {}).get("ResponseMetadata") or {}
    return not metadata.get("RetryAttempts")


def resend_pause(attempt: int) -> float:
    """Seconds to wait before sending CreateDeployment again after attempt `attempt` (from 1) failed."""
    return min(random.random() * 2 ** (attempt - 1), CREATE_MAX_PAUSE)


@functools.cache
def _create_refusals() -> frozenset[str]:
    """The error codes botocore's codedeploy model lists for CreateDeployment (read on an error only)."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("codedeploy")
    return frozenset(shape.name for shape in model.operation_model("CreateDeployment").error_shapes)


def get_deployment(deployment_id: str) -> dict[str, Any]:
    """GetDeployment's deploymentInfo."""
    return dict(aws.client("codedeploy").get_deployment(deploymentId=deployment_id)["deploymentInfo"])


def get_deployments(deployment_ids: list[str]) -> dict[str, dict[str, Any]]:
    """deploymentInfo by id; ids CodeDeploy does not know are absent."""
    found: dict[str, dict[str, Any]] = {}
    unique = sorted(set(deployment_ids))
    for start in range(0, len(unique), BATCH_GET_LIMIT):
        resp = aws.client("codedeploy").batch_get_deployments(
            deploymentIds=unique[start : start + BATCH_GET_LIMIT]
        )
        for info in resp.get("deploymentsInfo", []):
            found[info["deploymentId"]] = dict(info)
    return found


def inline_appspec(application: str, revision: dict[str, Any]) -> str:
    """The AppSpec text of an inline revision (AppSpecContent or String), as CodeDeploy stores it."""
    revision_type = revision.get("revisionType")
    response = aws.client("codedeploy").get_application_revision(
        applicationName=application, revision=revision
    )
    stored = response.get("revision") or {}
    key = "appSpecContent" if revision_type == "AppSpecContent" else "string"
    return str((stored.get(key) or {}).get("content") or (revision.get(key) or {}).get("content") or "")


def lambda_target(deployment_id: str) -> dict[str, Any] | None:
    """The deployment's Lambda target (GetDeploymentTarget's lambdaTarget: its lifecycle events, and in
    lambdaFunctionInfo the function, alias and versions); None when the deployment lists no target."""
    codedeploy = aws.client("codedeploy")
    target_ids = codedeploy.list_deployment_targets(deploymentId=deployment_id).get("targetIds") or []
    if not target_ids:
        return None
    target = codedeploy.get_deployment_target(deploymentId=deployment_id, targetId=target_ids[0])
    return dict((target.get("deploymentTarget") or {}).get("lambdaTarget") or {})


def lifecycle_events(deployment_id: str) -> list[dict[str, Any]] | None:
    """The Lambda target's lifecycle events (with their times); None when the deployment lists no target."""
    target = lambda_target(deployment_id)
    return None if target is None else list(target.get("lifecycleEvents") or [])


def put_hook_status(deployment_id: str, execution_id: str, status: str) -> None:
    """PutLifecycleEventHookExecutionStatus: a hook's verdict on one lifecycle event."""
    aws.client("codedeploy").put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status=status
    )


def deployment_and_clock(deployment_id: str) -> tuple[dict[str, Any], datetime | None]:
    """GetDeployment's deploymentInfo and CodeDeploy's clock when it answered (the Date header).

    Approval gates count their minutes on CodeDeploy's clock, the one its hook limit runs on (the
    local sandbox runs it faster than real time); None when the answer carries no Date.
    """
    resp = aws.client("codedeploy").get_deployment(deploymentId=deployment_id)
    clock = aws.server_time(resp)
    return dict(resp["deploymentInfo"]), clock


def stop_deployment(deployment_id: str) -> dict[str, Any]:
    """StopDeployment with CodeDeploy's rollback: the alias goes back to the version it served."""
    resp = aws.client("codedeploy").stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)
    return {"status": resp.get("status"), "message": resp.get("statusMessage")}
