"""The wire side of CodeDeploy (JSON 1.1): `dispatch(operation, body)` → response dict.

The server routes `X-Amz-Target: CodeDeploy_20141006.<Operation>` here after `bind(engine)`.
Requests are checked against botocore's model first, then handed to the engine; answers are
JSON-ready dicts (timestamps as epoch seconds), rendered from the copies the engine hands out (it
alone takes its lock). AWS errors are raised as `CodeDeployError`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sandbox.codedeploy import models
from sandbox.codedeploy.engine import BATCH_LIMIT, CodeDeployEngine
from sandbox.codedeploy.errors import CodeDeployError
from sandbox.codedeploy.validation import RequestInvalid, operation_model, validate

__all__ = ["CodeDeployError", "bind", "dispatch", "unbind"]

PAGE_SIZE = 100

_engine: CodeDeployEngine | None = None
_bind_lock = threading.Lock()

Handler = Callable[[CodeDeployEngine, dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, Handler] = {}


def bind(engine: CodeDeployEngine) -> None:
    global _engine
    with _bind_lock:
        _engine = engine


def unbind(engine: CodeDeployEngine | None = None) -> None:
    global _engine
    with _bind_lock:
        if engine is None or _engine is engine:
            _engine = None


def dispatch(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    engine = _engine
    if operation_model(operation) is None:
        raise CodeDeployError("UnknownOperationException", f"CodeDeploy has no operation {operation}.")
    handler = HANDLERS.get(operation)
    if handler is None:
        raise CodeDeployError(
            "InvalidOperationException", f"The local sandbox does not implement CodeDeploy {operation}."
        )
    if engine is None:
        raise CodeDeployError("ServiceUnavailableException", "The CodeDeploy engine is not running.")
    body = body or {}
    try:
        validate(operation, body)
    except RequestInvalid as exc:
        raise CodeDeployError(exc.code, exc.message) from exc
    return handler(engine, body)


def handles(operation: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[operation] = handler
        return handler

    return register


def _page(names: list[str], token: Any, key: str) -> dict[str, Any]:
    start = 0
    if token:
        if not isinstance(token, str) or not token.isdigit() or int(token) > len(names):
            raise CodeDeployError("InvalidNextTokenException", "The next token is not valid.")
        start = int(token)
    answer: dict[str, Any] = {key: names[start : start + PAGE_SIZE]}
    if start + PAGE_SIZE < len(names):
        answer["nextToken"] = str(start + PAGE_SIZE)
    return answer


def _batch(items: list[Any], code: str) -> None:
    if len(items) > BATCH_LIMIT:
        raise CodeDeployError(code, f"At most {BATCH_LIMIT} items per batch call.")


# --- applications ------------------------------------------------------------------------------
@handles("CreateApplication")
def _create_application(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    application_id = engine.create_application(
        body["applicationName"], body.get("computePlatform") or "Server", body.get("tags")
    )
    return {"applicationId": application_id}


@handles("GetApplication")
def _get_application(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    return {"application": models.application_info(engine.get_application(body["applicationName"]))}


@handles("BatchGetApplications")
def _batch_get_applications(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    names = body["applicationNames"]
    _batch(names, "BatchLimitExceededException")
    return {"applicationsInfo": [models.application_info(app) for app in engine.get_applications(names)]}


@handles("ListApplications")
def _list_applications(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    return _page(engine.list_applications(), body.get("nextToken"), "applications")


@handles("DeleteApplication")
def _delete_application(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.delete_application(body["applicationName"])
    return {}


# --- deployment configs ------------------------------------------------------------------------
@handles("CreateDeploymentConfig")
def _create_config(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("zonalConfig"):
        raise CodeDeployError(
            "InvalidZonalDeploymentConfigurationException", "Zonal configs are for EC2 only."
        )
    config_id = engine.create_config(
        body["deploymentConfigName"],
        body.get("computePlatform"),
        body.get("trafficRoutingConfig"),
        body.get("minimumHealthyHosts"),
    )
    return {"deploymentConfigId": config_id}


@handles("GetDeploymentConfig")
def _get_config(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    return {"deploymentConfigInfo": engine.get_config(body["deploymentConfigName"]).to_info()}


@handles("ListDeploymentConfigs")
def _list_configs(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    return _page(engine.list_configs(), body.get("nextToken"), "deploymentConfigsList")


@handles("DeleteDeploymentConfig")
def _delete_config(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.delete_config(body["deploymentConfigName"])
    return {}


# --- deployment groups -------------------------------------------------------------------------
@handles("CreateDeploymentGroup")
def _create_group(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    group_id = engine.create_group(body["applicationName"], body["deploymentGroupName"], body)
    return {"deploymentGroupId": group_id}


@handles("GetDeploymentGroup")
def _get_group(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    view = engine.get_group(body["applicationName"], body["deploymentGroupName"])
    return {"deploymentGroupInfo": models.group_info(view)}


@handles("BatchGetDeploymentGroups")
def _batch_get_groups(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    names = body["deploymentGroupNames"]
    _batch(names, "BatchLimitExceededException")
    found, missing = engine.get_groups(body["applicationName"], names)
    answer: dict[str, Any] = {"deploymentGroupsInfo": [models.group_info(view) for view in found]}
    if missing:
        answer["errorMessage"] = f"Deployment groups not found: {', '.join(missing)}"
    return answer


@handles("UpdateDeploymentGroup")
def _update_group(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.update_group(body["applicationName"], body["currentDeploymentGroupName"], body)
    return {"hooksNotCleanedUp": []}


@handles("ListDeploymentGroups")
def _list_groups(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    answer = _page(engine.list_groups(body["applicationName"]), body.get("nextToken"), "deploymentGroups")
    return {"applicationName": body["applicationName"], **answer}


@handles("DeleteDeploymentGroup")
def _delete_group(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.delete_group(body["applicationName"], body["deploymentGroupName"])
    return {"hooksNotCleanedUp": []}


# --- deployments -------------------------------------------------------------------------------
@handles("CreateDeployment")
def _create_deployment(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    return {"deploymentId": engine.create_deployment(body)}


@handles("GetDeployment")
def _get_deployment(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    return {"deploymentInfo": models.deployment_info(engine.get_deployment(body["deploymentId"]))}


@handles("BatchGetDeployments")
def _batch_get_deployments(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    ids = body["deploymentIds"]
    _batch(ids, "BatchLimitExceededException")
    return {"deploymentsInfo": [models.deployment_info(dep) for dep in engine.get_deployments(ids)]}


@handles("ListDeployments")
def _list_deployments(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    return _page(engine.list_deployments(body), body.get("nextToken"), "deployments")


@handles("StopDeployment")
def _stop_deployment(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    status, message = engine.stop_deployment(body["deploymentId"], body.get("autoRollbackEnabled"))
    return {"status": status, "statusMessage": message}


@handles("ContinueDeployment")
def _continue_deployment(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    dep = engine.get_deployment(body.get("deploymentId"))
    if not dep.active:
        raise CodeDeployError("DeploymentAlreadyCompletedException", f"{dep.deployment_id} has completed.")
    raise CodeDeployError(
        "DeploymentIsNotInReadyStateException",
        f"Deployment {dep.deployment_id} is a Lambda deployment, never Ready.",
    )


@handles("PutLifecycleEventHookExecutionStatus")
def _put_hook_status(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    execution_id = engine.put_hook_status(
        body.get("deploymentId"), body.get("lifecycleEventHookExecutionId"), body.get("status")
    )
    return {"lifecycleEventHookExecutionId": execution_id}


# --- revisions ---------------------------------------------------------------------------------
@handles("GetApplicationRevision")
def _get_revision(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    record = engine.application_revision(body["applicationName"], body["revision"])
    info = {
        "description": record.description or None,
        "deploymentGroups": list(record.deployment_groups),
        "firstUsedTime": record.first_used_time,
        "lastUsedTime": record.last_used_time,
        "registerTime": record.register_time,
    }
    return {
        "applicationName": body["applicationName"],
        "revision": record.revision,
        "revisionInfo": {k: v for k, v in info.items() if v is not None},
    }


@handles("RegisterApplicationRevision")
def _register_revision(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    engine.register_revision(body["applicationName"], body["revision"], body.get("description") or "")
    return {}


# --- deployment targets ------------------------------------------------------------------------
@handles("ListDeploymentTargets")
def _list_targets(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    ids = engine.target_ids(body["deploymentId"], body.get("targetFilters") or {})
    return _page(ids, body.get("nextToken"), "targetIds")


@handles("GetDeploymentTarget")
def _get_target(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    dep = engine.get_target(body["deploymentId"], body["targetId"])
    return {"deploymentTarget": models.lambda_target_info(dep)}


@handles("BatchGetDeploymentTargets")
def _batch_get_targets(engine: CodeDeployEngine, body: dict[str, Any]) -> dict[str, Any]:
    ids = body["targetIds"]
    _batch(ids, "DeploymentTargetListSizeExceededException")
    deps = engine.get_targets(body["deploymentId"], ids)
    return {"deploymentTargets": [models.lambda_target_info(dep) for dep in deps]}
