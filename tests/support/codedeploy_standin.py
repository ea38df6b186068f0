"""A CodeDeploy stand-in for integration tests (moto's CodeDeploy only records).

Every call is validated against botocore's own codedeploy service model, so a wrong parameter
name or type fails the test exactly as it would fail against AWS. Behaviour is the small part of
CodeDeploy the control plane relies on: groups, one active deployment per group, revisions,
lifecycle hook status reporting and stops. Tests steer it through its public attributes.
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import botocore.session
from botocore.exceptions import ClientError, ParamValidationError
from botocore.validate import ParamValidator

ACTIVE = {"Created", "Queued", "InProgress", "Baking", "Ready"}


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@dataclass
class StandInDeployment:
    deployment_id: str
    application: str
    group: str
    revision: dict[str, Any]
    config: str
    status: str = "InProgress"
    create_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    complete_time: datetime | None = None
    error_information: dict[str, str] | None = None
    rollback_info: dict[str, str] | None = None
    description: str = ""
    # hook execution id -> reported status (None until reported)
    hook_executions: dict[str, str | None] = field(default_factory=dict)


class CodeDeployStandIn:
    def __init__(self) -> None:
        session = botocore.session.get_session()
        self.model = session.get_service_model("codedeploy")
        self._validator = ParamValidator()
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.applications: dict[str, dict[str, Any]] = {}
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.deployments: dict[str, StandInDeployment] = {}
        # custom deployment configuration name -> its trafficRoutingConfig
        self.configs: dict[str, dict[str, Any]] = {}
        # operation (python name) -> errors to raise, in order, before behaving normally
        self.fail_next: dict[str, list[ClientError]] = {}
        # operation (python name) -> errors to raise, in order, after behaving normally: the call was
        # served and the caller is told it failed (the sandbox's Faults.fail with after_serving)
        self.fail_after: dict[str, list[ClientError]] = {}

    # --- test helpers ------------------------------------------------------------------------
    def lose_create_answer(self, code: str = "InternalFailure") -> None:
        """The next CreateDeployment creates its deployment, and its caller is told `code`: a 5xx or a
        throttle, or the DeploymentLimitExceeded botocore's resend meets (the first attempt's deployment)."""
        self.fail_after["create_deployment"] = [
            client_error(code, "answered after the deployment was created", "CreateDeployment")
        ]

    def refuse_next_lookup(self) -> None:
        """The next read of deployments by id is throttled: whether a deployment exists cannot be learnt."""
        self.fail_next["batch_get_deployments"] = [
            client_error("ThrottlingException", "Rate exceeded", "BatchGetDeployments")
        ]

    def calls_to(self, operation: str) -> list[dict[str, Any]]:
        return [params for op, params in self.calls if op == operation]

    def new_hook_execution(self, deployment_id: str) -> str:
        execution_id = "".join(random.choices(string.ascii_letters + string.digits, k=40))
        self.deployments[deployment_id].hook_executions[execution_id] = None
        return execution_id

    def finish(self, deployment_id: str, status: str, **info: Any) -> None:
        dep = self.deployments[deployment_id]
        dep.status = status
        dep.complete_time = datetime.now(UTC)
        dep.error_information = info.get("error_information")
        dep.rollback_info = info.get("rollback_info")

    # --- dispatch ------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        op_name = "".join(part.capitalize() for part in name.split("_"))
        if op_name not in self.model.operation_names:
            raise AttributeError(f"codedeploy has no operation {name}")
        operation = self.model.operation_model(op_name)

        def call(**params: Any) -> dict[str, Any]:
            report = self._validator.validate(params, operation.input_shape)
            if report.has_errors():
                raise ParamValidationError(report=report.generate_report())
            self.calls.append((name, params))
            queued = self.fail_next.get(name)
            if queued:
                raise queued.pop(0)
            handler = getattr(self, f"_op_{name}", None)
            answer = handler(**params) if handler else {}
            unheard = self.fail_after.get(name)
            if unheard:
                raise unheard.pop(0)
            return answer

        return call

    # --- behaviour ----------------------------------------------------------------------------
    def _op_get_deployment_config(self, deploymentConfigName: str) -> dict[str, Any]:
        routing = self.configs.get(deploymentConfigName)
        if routing is None:
            raise client_error(
                "DeploymentConfigDoesNotExistException", "no such configuration", "GetDeploymentConfig"
            )
        info = {"deploymentConfigName": deploymentConfigName, "computePlatform": "Lambda"}
        return {"deploymentConfigInfo": {**info, "trafficRoutingConfig": routing}}

    def _op_create_application(self, applicationName: str, **_: Any) -> dict[str, Any]:
        if applicationName in self.applications:
            raise client_error("ApplicationAlreadyExistsException", "exists", "CreateApplication")
        self.applications[applicationName] = {"applicationName": applicationName, "computePlatform": "Lambda"}
        return {"applicationId": hashlib.md5(applicationName.encode()).hexdigest()}

    def _op_get_application(self, applicationName: str) -> dict[str, Any]:
        if applicationName not in self.applications:
            raise client_error("ApplicationDoesNotExistException", "no such application", "GetApplication")
        return {"application": self.applications[applicationName]}

    def _op_create_deployment_group(self, **params: Any) -> dict[str, Any]:
        key = (params["applicationName"], params["deploymentGroupName"])
        if key in self.groups:
            raise client_error("DeploymentGroupAlreadyExistsException", "exists", "CreateDeploymentGroup")
        self.groups[key] = dict(params)
        return {"deploymentGroupId": hashlib.md5("/".join(key).encode()).hexdigest()}

    def _op_get_deployment_group(self, applicationName: str, deploymentGroupName: str) -> dict[str, Any]:
        group = self.groups.get((applicationName, deploymentGroupName))
        if group is None:
            raise client_error("DeploymentGroupDoesNotExistException", "no such group", "GetDeploymentGroup")
        info = {k: v for k, v in group.items() if k not in ("applicationName",)}
        info["applicationName"] = applicationName
        info.setdefault("deploymentConfigName", "CodeDeployDefault.OneAtATime")
        info["computePlatform"] = "Lambda"
        return {"deploymentGroupInfo": info}

    def _op_update_deployment_group(self, **params: Any) -> dict[str, Any]:
        key = (params["applicationName"], params["currentDeploymentGroupName"])
        if key not in self.groups:
            raise client_error(
                "DeploymentGroupDoesNotExistException", "no such group", "UpdateDeploymentGroup"
            )
        group = self.groups[key]
        for k, v in params.items():
            if k not in ("applicationName", "currentDeploymentGroupName"):
                group[k] = v
        return {}

    def _op_create_deployment(self, **params: Any) -> dict[str, Any]:
        app, group = params["applicationName"], params["deploymentGroupName"]
        if (app, group) not in self.groups:
            raise client_error("DeploymentGroupDoesNotExistException", "no such group", "CreateDeployment")
        for dep in self.deployments.values():
            if dep.application == app and dep.group == group and dep.status in ACTIVE:
                raise client_error(
                    "DeploymentLimitExceededException",
                    f"The Deployment Group '{group}' already has an active Deployment '{dep.deployment_id}'",
                    "CreateDeployment",
                )
        deployment_id = "d-" + "".join(random.choices(string.ascii_uppercase + string.digits, k=9))
        config = params.get("deploymentConfigName") or self.groups[(app, group)].get(
            "deploymentConfigName", "CodeDeployDefault.LambdaAllAtOnce"
        )
        self.deployments[deployment_id] = StandInDeployment(
            deployment_id, app, group, params["revision"], config, description=params.get("description", "")
        )
        return {"deploymentId": deployment_id}

    def _deployment(self, deploymentId: str, operation: str) -> StandInDeployment:
        dep = self.deployments.get(deploymentId)
        if dep is None:
            raise client_error("DeploymentDoesNotExistException", "no such deployment", operation)
        return dep

    def _info(self, dep: StandInDeployment) -> dict[str, Any]:
        info: dict[str, Any] = {
            "applicationName": dep.application,
            "deploymentGroupName": dep.group,
            "deploymentConfigName": dep.config,
            "deploymentId": dep.deployment_id,
            "revision": dep.revision,
            "status": dep.status,
            "createTime": dep.create_time,
            "computePlatform": "Lambda",
            "creator": "user",
            "description": dep.description,
        }
        if dep.complete_time:
            info["completeTime"] = dep.complete_time
        if dep.error_information:
            info["errorInformation"] = dep.error_information
        if dep.rollback_info:
            info["rollbackInfo"] = dep.rollback_info
        return info

    def _op_get_deployment(self, deploymentId: str) -> dict[str, Any]:
        return {"deploymentInfo": self._info(self._deployment(deploymentId, "GetDeployment"))}

    def _op_batch_get_deployments(self, deploymentIds: list[str]) -> dict[str, Any]:
        return {
            "deploymentsInfo": [
                self._info(self.deployments[d]) for d in deploymentIds if d in self.deployments
            ]
        }

    def _op_list_deployments(self, **params: Any) -> dict[str, Any]:
        statuses = set(params.get("includeOnlyStatuses") or [])
        return {
            "deployments": [
                d.deployment_id
                for d in self.deployments.values()
                if (not params.get("applicationName") or d.application == params["applicationName"])
                and (not params.get("deploymentGroupName") or d.group == params["deploymentGroupName"])
                and (not statuses or d.status in statuses)
            ]
        }

    def _op_get_application_revision(self, applicationName: str, revision: dict[str, Any]) -> dict[str, Any]:
        for dep in self.deployments.values():
            if dep.application == applicationName and dep.revision.get("appSpecContent", {}).get(
                "sha256"
            ) == revision.get("appSpecContent", {}).get("sha256"):
                return {"applicationName": applicationName, "revision": dep.revision, "revisionInfo": {}}
        raise client_error("RevisionDoesNotExistException", "no such revision", "GetApplicationRevision")

    def _op_put_lifecycle_event_hook_execution_status(
        self, deploymentId: str, lifecycleEventHookExecutionId: str, status: str
    ) -> dict[str, Any]:
        dep = self._deployment(deploymentId, "PutLifecycleEventHookExecutionStatus")
        if lifecycleEventHookExecutionId not in dep.hook_executions:
            raise client_error(
                "InvalidLifecycleEventHookExecutionIdException",
                "unknown execution id",
                "PutLifecycleEventHookExecutionStatus",
            )
        if dep.hook_executions[lifecycleEventHookExecutionId] is not None:
            raise client_error(
                "LifecycleEventAlreadyCompletedException",
                "already completed",
                "PutLifecycleEventHookExecutionStatus",
            )
        if status not in ("Succeeded", "Failed"):
            raise client_error(
                "InvalidLifecycleEventHookExecutionStatusException",
                "bad status",
                "PutLifecycleEventHookExecutionStatus",
            )
        dep.hook_executions[lifecycleEventHookExecutionId] = status
        return {"lifecycleEventHookExecutionId": lifecycleEventHookExecutionId}

    def _op_stop_deployment(self, deploymentId: str, autoRollbackEnabled: bool = False) -> dict[str, Any]:
        dep = self._deployment(deploymentId, "StopDeployment")
        if dep.status not in ACTIVE:
            raise client_error("DeploymentAlreadyCompletedException", "already completed", "StopDeployment")
        self.finish(
            deploymentId,
            "Stopped",
            error_information={"code": "MANUAL_STOP", "message": "stopped by request"},
        )
        return {"status": "Succeeded", "statusMessage": "stopped"}
