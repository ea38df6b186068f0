"""CodeDeploy records (applications, groups, deployments) and how they read on the wire.

Pure data and the rules of status changes; the engine holds them under its lock and applies the steps
its runners report, the API serialises them with the `*_info` functions below."""

from __future__ import annotations

import base64
import secrets
import string
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sandbox.codedeploy.appspec import AFTER_ALLOW_TRAFFIC, BEFORE_ALLOW_TRAFFIC, AppSpec
from sandbox.codedeploy.configs import DeploymentConfig

# Deployment statuses (DeploymentStatus in the service model); Queued/Baking/Ready never occur for Lambda here.
CREATED, QUEUED, IN_PROGRESS, BAKING, READY = "Created", "Queued", "InProgress", "Baking", "Ready"
SUCCEEDED, FAILED, STOPPED = "Succeeded", "Failed", "Stopped"
ACTIVE_STATUSES = frozenset({CREATED, QUEUED, IN_PROGRESS, BAKING, READY})
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, STOPPED})
TRANSITIONS: dict[str, frozenset[str]] = {
    CREATED: frozenset({IN_PROGRESS, FAILED, STOPPED}),
    IN_PROGRESS: frozenset({SUCCEEDED, FAILED, STOPPED}),
}

# Lifecycle events of a Lambda deployment, in order, and their statuses.
START, ALLOW_TRAFFIC, END = "Start", "AllowTraffic", "End"
LIFECYCLE_EVENTS = (START, BEFORE_ALLOW_TRAFFIC, ALLOW_TRAFFIC, AFTER_ALLOW_TRAFFIC, END)
PENDING, SKIPPED = "Pending", "Skipped"

# Auto-rollback triggers.
ON_FAILURE = "DEPLOYMENT_FAILURE"
ON_ALARM = "DEPLOYMENT_STOP_ON_ALARM"
ON_REQUEST = "DEPLOYMENT_STOP_ON_REQUEST"

ID_ALPHABET = string.ascii_uppercase + string.digits


class TransitionError(RuntimeError):
    pass


def new_deployment_id() -> str:
    return "d-" + "".join(secrets.choice(ID_ALPHABET) for _ in range(9))


def new_hook_execution_id() -> str:
    # Opaque and long, like the ids AWS hands hooks.
    return base64.b64encode(secrets.token_bytes(96)).decode()


def is_deployment_id(value: str) -> bool:
    return (
        isinstance(value, str)
        and len(value) == 11
        and value.startswith("d-")
        and all(c in ID_ALPHABET for c in value[2:])
    )


def can_move(current: str, new: str) -> bool:
    return new in TRANSITIONS.get(current, frozenset())


@dataclass
class Application:
    name: str
    application_id: str
    compute_platform: str
    create_time: float
    tags: list[dict[str, str]] = field(default_factory=list)
    # revision key (sha256) -> RevisionRecord
    revisions: dict[str, RevisionRecord] = field(default_factory=dict)


@dataclass
class RevisionRecord:
    revision: dict[str, Any]
    register_time: float
    first_used_time: float | None = None
    last_used_time: float | None = None
    deployment_groups: list[str] = field(default_factory=list)
    description: str = ""


@dataclass
class DeploymentGroup:
    application: str
    name: str
    group_id: str
    service_role_arn: str
    deployment_config_name: str
    compute_platform: str
    alarm_configuration: dict[str, Any] = field(
        default_factory=lambda: {"enabled": False, "ignorePollAlarmFailure": False, "alarms": []}
    )
    auto_rollback_configuration: dict[str, Any] = field(
        default_factory=lambda: {"enabled": False, "events": []}
    )
    deployment_style: dict[str, str] = field(
        default_factory=lambda: {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
    )
    trigger_configurations: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, str]] = field(default_factory=list)
    last_attempted: str | None = None  # deployment id
    last_successful: str | None = None


@dataclass
class LifecycleRecord:
    name: str
    status: str = PENDING
    start_time: float | None = None
    end_time: float | None = None
    diagnostics: dict[str, str] | None = None


@dataclass
class HookExecution:
    execution_id: str
    lifecycle_event: str
    function_name: str
    reported: str | None = None  # Succeeded | Failed once the hook reports
    closed: bool = False  # the lifecycle event no longer waits for it


@dataclass
class StopRequest:
    auto_rollback: bool | None  # None: the group's DEPLOYMENT_STOP_ON_REQUEST setting decides


@dataclass
class Deployment:
    deployment_id: str
    application: str
    group_name: str
    group_id: str
    config: DeploymentConfig
    revision: dict[str, Any]
    appspec: AppSpec
    create_time: float
    creator: str = "user"
    description: str = ""
    status: str = CREATED
    start_time: float | None = None
    complete_time: float | None = None
    error_information: dict[str, str] | None = None
    rollback_info: dict[str, str] | None = None
    auto_rollback_configuration: dict[str, Any] = field(default_factory=dict)
    alarm_configuration: dict[str, Any] = field(default_factory=dict)
    alarm_overridden: bool = False  # CreateDeployment gave overrideAlarmConfiguration
    target_status: str = PENDING
    target_weight: float = 0.0
    target_updated: float | None = None
    function_arn: str | None = None
    lifecycle: dict[str, LifecycleRecord] = field(
        default_factory=lambda: {name: LifecycleRecord(name) for name in LIFECYCLE_EVENTS}
    )
    hook_executions: dict[str, HookExecution] = field(default_factory=dict)
    stop_request: StopRequest | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def target_id(self) -> str:
        return f"{self.appspec.function_name}:{self.appspec.alias}"

    def move(self, new_status: str) -> None:
        if not can_move(self.status, new_status):
            raise TransitionError(
                f"deployment {self.deployment_id} cannot go from {self.status} to {new_status}"
            )
        self.status = new_status

    def rollback_wanted(self, trigger: str, explicit: bool | None = None) -> bool:
        """Whether `trigger` (ON_FAILURE/ON_ALARM/ON_REQUEST) rolls this deployment back."""
        if explicit is not None:
            return explicit
        config = self.auto_rollback_configuration or {}
        return bool(config.get("enabled")) and trigger in (config.get("events") or [])

    # The steps a runner takes the deployment through (the engine applies them under its lock).
    def begin(self, now: float) -> None:
        self.move(IN_PROGRESS)
        self.start_time = now
        self.target_status = IN_PROGRESS

    def begin_event(self, name: str, now: float) -> None:
        record = self.lifecycle[name]
        record.status, record.start_time = IN_PROGRESS, now
        self.target_updated = now

    def end_event(self, name: str, status: str, now: float, diagnostics: dict[str, str] | None) -> None:
        record = self.lifecycle[name]
        if record.start_time is None:
            record.start_time = now
        record.status, record.end_time, record.diagnostics = status, now, diagnostics
        self.target_updated = now

    def shift(self, weight: float, now: float) -> None:
        self.target_weight = weight
        self.target_updated = now

    def succeed(self, now: float) -> None:
        self.move(SUCCEEDED)
        self.complete_time = now
        self.target_status = SUCCEEDED

    def fail_target(self, error: dict[str, str], diagnostics: dict[str, str], now: float) -> None:
        """The lifecycle stops here: the running event failed, the ones not reached are skipped, and no
        hook is waited for any more. The deployment itself ends with `end` (after any rollback)."""
        for execution in self.hook_executions.values():
            execution.closed = True
        for record in self.lifecycle.values():
            if record.status == IN_PROGRESS:
                record.status, record.end_time, record.diagnostics = FAILED, now, diagnostics
            elif record.status == PENDING:
                record.status = SKIPPED
        self.error_information = error
        self.target_status = FAILED
        self.target_updated = now
        if self.start_time is None:  # it failed before it began
            self.start_time = now

    def end(self, status: str, now: float) -> None:
        self.move(status)
        self.complete_time = now

    def finish_rollback(
        self, function_arn: str | None, error: dict[str, str] | None, started: float, ended: float
    ) -> None:
        """A rollback deployment, which moves the alias in one call and runs no hooks, ends."""
        outcome = SUCCEEDED if error is None else FAILED
        for record in self.lifecycle.values():
            record.start_time, record.end_time = started, ended
            record.status = SKIPPED if record.name in (BEFORE_ALLOW_TRAFFIC, AFTER_ALLOW_TRAFFIC) else outcome
        self.function_arn = function_arn
        self.error_information = error
        self.target_status = outcome
        self.target_weight = 1.0 if outcome == SUCCEEDED else 0.0
        self.target_updated = ended
        self.move(outcome)
        self.complete_time = ended


class GroupView(NamedTuple):
    """A deployment group with its last attempted and last successful deployments, as GetDeploymentGroup
    shows them."""

    group: DeploymentGroup
    last_attempted: Deployment | None
    last_successful: Deployment | None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def application_info(app: Application) -> dict[str, Any]:
    return {
        "applicationId": app.application_id,
        "applicationName": app.name,
        "createTime": app.create_time,
        "linkedToGitHub": False,
        "computePlatform": app.compute_platform,
    }


def deployment_overview(deployment: Deployment) -> dict[str, int]:
    overview = dict.fromkeys(("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready"), 0)
    if deployment.target_status in overview:
        overview[deployment.target_status] = 1
    return overview


def deployment_info(deployment: Deployment) -> dict[str, Any]:
    info: dict[str, Any] = {
        "applicationName": deployment.application,
        "deploymentGroupName": deployment.group_name,
        "deploymentConfigName": deployment.config.name,
        "deploymentId": deployment.deployment_id,
        "revision": deployment.revision,
        "status": deployment.status,
        "createTime": deployment.create_time,
        "startTime": deployment.start_time,
        "completeTime": deployment.complete_time,
        "deploymentOverview": deployment_overview(deployment),
        "description": deployment.description or None,
        "creator": deployment.creator,
        "ignoreApplicationStopFailures": False,
        "autoRollbackConfiguration": deployment.auto_rollback_configuration or None,
        "updateOutdatedInstancesOnly": False,
        "errorInformation": deployment.error_information,
        "rollbackInfo": deployment.rollback_info,
        "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
        "instanceTerminationWaitTimeStarted": False,
        "fileExistsBehavior": "DISALLOW",
        "deploymentStatusMessages": [],
        "computePlatform": deployment.config.compute_platform,
    }
    if deployment.alarm_overridden:
        info["overrideAlarmConfiguration"] = deployment.alarm_configuration
    return _drop_none(info)


def lifecycle_event_info(record: LifecycleRecord) -> dict[str, Any]:
    return _drop_none(
        {
            "lifecycleEventName": record.name,
            "diagnostics": record.diagnostics,
            "startTime": record.start_time,
            "endTime": record.end_time,
            "status": record.status,
        }
    )


def lambda_target_info(deployment: Deployment) -> dict[str, Any]:
    spec = deployment.appspec
    return {
        "deploymentTargetType": "LambdaTarget",
        "lambdaTarget": _drop_none(
            {
                "deploymentId": deployment.deployment_id,
                "targetId": deployment.target_id,
                "targetArn": deployment.function_arn,
                "status": deployment.target_status,
                "lastUpdatedAt": deployment.target_updated or deployment.create_time,
                "lifecycleEvents": [lifecycle_event_info(r) for r in deployment.lifecycle.values()],
                "lambdaFunctionInfo": {
                    "functionName": spec.function_name,
                    "functionAlias": spec.alias,
                    "currentVersion": spec.current_version,
                    "targetVersion": spec.target_version,
                    "targetVersionWeight": deployment.target_weight,
                },
            }
        ),
    }


def last_deployment_info(deployment: Deployment | None) -> dict[str, Any] | None:
    if deployment is None:
        return None
    return _drop_none(
        {
            "deploymentId": deployment.deployment_id,
            "status": deployment.status,
            "endTime": deployment.complete_time,
            "createTime": deployment.create_time,
        }
    )


def group_info(view: GroupView) -> dict[str, Any]:
    group, last_attempted, last_successful = view
    return _drop_none(
        {
            "applicationName": group.application,
            "deploymentGroupId": group.group_id,
            "deploymentGroupName": group.name,
            "deploymentConfigName": group.deployment_config_name,
            "ec2TagFilters": [],
            "onPremisesInstanceTagFilters": [],
            "autoScalingGroups": [],
            "serviceRoleArn": group.service_role_arn,
            "triggerConfigurations": group.trigger_configurations,
            "alarmConfiguration": group.alarm_configuration,
            "autoRollbackConfiguration": group.auto_rollback_configuration,
            "deploymentStyle": group.deployment_style,
            "outdatedInstancesStrategy": "UPDATE",
            "lastAttemptedDeployment": last_deployment_info(last_attempted),
            "lastSuccessfulDeployment": last_deployment_info(last_successful),
            "computePlatform": group.compute_platform,
            "terminationHookEnabled": False,
        }
    )
