"""CodeDeploy adapter: one deployment group per managed function (group name == function name)."""

from __future__ import annotations

from typing import Any

from rollout import aws
from rollout.errors import DeploymentLimitExceeded

ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST")
BATCH_GET_LIMIT = 25  # BatchGetDeployments takes at most 25 ids
ACTIVE_STATUSES = ["Created", "Queued", "InProgress", "Baking", "Ready"]


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
    try:
        resp = aws.client("codedeploy").list_deployments(
            applicationName=application, deploymentGroupName=group, includeOnlyStatuses=ACTIVE_STATUSES
        )
    except Exception as exc:
        if aws.error_code(exc) == "DeploymentGroupDoesNotExistException":
            return []
        raise
    return [str(d) for d in resp.get("deployments", [])]


def create_deployment(
    application: str, group: str, revision: dict[str, Any], deployment_config: str, description: str
) -> str:
    try:
        resp = aws.client("codedeploy").create_deployment(
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
