"""The CodeDeploy engine: applications, deployment groups, configs and deployments of the sandbox.

All state sits behind one lock that only the engine takes: every public method takes it itself.
Each deployment runs in its own `DeploymentRunner` thread, which reports each step through the
engine's runner methods (`runner.RunnerEngine`). Methods take Python values and raise
`CodeDeployError` with AWS's codes; `api` does the wire side."""

from __future__ import annotations

import copy
import logging
import threading
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Protocol

from sandbox.codedeploy import appspec as appspec_module
from sandbox.codedeploy.alarm_poller import AlarmPoller
from sandbox.codedeploy.appspec import AppSpec, AppSpecError
from sandbox.codedeploy.aws import AwsCallError, AwsPort, BotoAws
from sandbox.codedeploy.configs import (
    BUILTIN_CONFIGS,
    BUILTIN_PREFIX,
    LAMBDA,
    ConfigError,
    DeploymentConfig,
    validate_traffic_routing,
)
from sandbox.codedeploy.errors import CodeDeployError
from sandbox.codedeploy.models import (
    IN_PROGRESS,
    LIFECYCLE_EVENTS,
    SUCCEEDED,
    Application,
    Deployment,
    DeploymentGroup,
    GroupView,
    HookExecution,
    LifecycleRecord,
    RevisionRecord,
    StopRequest,
    is_deployment_id,
    new_deployment_id,
    new_hook_execution_id,
)
from sandbox.codedeploy.runner import HOOK_TIMEOUT_SECONDS, DeploymentRunner, Plan

log = logging.getLogger(__name__)

MAX_ALARMS = 10
BATCH_LIMIT = 25  # BatchGetDeployments / BatchGetDeploymentTargets / BatchGet* limits
DESCRIPTION_LIMIT = 512
REVISION_TYPES = ("AppSpecContent", "String")
LAMBDA_STYLE = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
ROLLBACK_EVENTS = ("DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST")


class SandboxClock(Protocol):
    def now(self) -> float: ...

    def now_datetime(self) -> datetime: ...

    def real_seconds(self, sandbox_seconds: float) -> float: ...


def _name_check(value: Any, code: str, what: str) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 100:
        raise CodeDeployError(code, f"The {what} must be 1 to 100 characters long.")
    return value


def revision_key(revision: dict[str, Any]) -> tuple[str, str | None]:
    """(sha256, content or None) of an AppSpecContent/String revision."""
    kind = revision.get("revisionType")
    if kind not in REVISION_TYPES:
        raise CodeDeployError(
            "InvalidRevisionException",
            f"Revision type {kind!r} is not supported for Lambda deployments in the sandbox "
            "(use AppSpecContent).",
        )
    part = revision.get("appSpecContent" if kind == "AppSpecContent" else "string") or {}
    content, sha = part.get("content"), part.get("sha256")
    if content is not None and not isinstance(content, str):
        raise CodeDeployError("InvalidRevisionException", "The AppSpec content must be a string.")
    if content is not None:
        actual = appspec_module.content_sha256(content)
        if sha and sha.lower() != actual:
            raise CodeDeployError(
                "InvalidRevisionException", "The sha256 of the revision does not match its AppSpec content."
            )
        return actual, content
    if not sha:
        raise CodeDeployError("InvalidRevisionException", "The revision needs its content or its sha256.")
    return sha.lower(), None


def _description(request: dict[str, Any]) -> str:
    description: str = request.get("description") or ""
    if len(description) > DESCRIPTION_LIMIT:
        raise CodeDeployError(
            "DescriptionTooLongException", f"The description is longer than {DESCRIPTION_LIMIT}."
        )
    return description


def stored_revision(content: str, sha: str) -> dict[str, Any]:
    return {"revisionType": "AppSpecContent", "appSpecContent": {"content": content, "sha256": sha}}


class CodeDeployEngine:
    def __init__(
        self,
        clock: SandboxClock,
        endpoint_url: str,
        region: str = "us-east-1",
        account_id: str = "123456789012",
        aws: AwsPort | None = None,
        hook_timeout: float = HOOK_TIMEOUT_SECONDS,
        role_aws: Callable[[str, AwsPort], AwsPort] | None = None,
    ) -> None:
        self.clock = clock
        self.region = region
        self.account_id = account_id
        self.aws: AwsPort = aws if aws is not None else BotoAws(endpoint_url, region)
        # role_aws(service role ARN, service port): the port a deployment uses to act as its group's role.
        self._role_aws = role_aws
        self._role_ports: dict[str, AwsPort] = {}
        # One alarm poller per service role ("" for the service's own port): the role's running deployments
        # share its reads, and IAM still judges each read as the role.
        self._alarm_pollers: dict[str, AlarmPoller] = {}
        self.hook_timeout = hook_timeout
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._applications: dict[str, Application] = {}
        self._groups: dict[tuple[str, str], DeploymentGroup] = {}
        self._custom_configs: dict[str, DeploymentConfig] = {}
        self._deployments: dict[str, Deployment] = {}
        self._runners: dict[str, DeploymentRunner] = {}

    # --- lifecycle of the engine -------------------------------------------------------------
    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop every deployment thread (deployments stay as they are)."""
        self._stopping.set()
        with self._lock:
            runners = list(self._runners.values())
        for runner in runners:
            runner.nudge()
        for runner in runners:
            runner.join(timeout)

    def _application_arn(self, application: str) -> str:
        return f"arn:aws:codedeploy:{self.region}:{self.account_id}:application:{application}"

    def _group_arn(self, deployment: Deployment) -> str:
        return (
            f"arn:aws:codedeploy:{self.region}:{self.account_id}:deploymentgroup:"
            f"{deployment.application}/{deployment.group_name}"
        )

    # --- applications ------------------------------------------------------------------------
    def _application(self, name: Any) -> Application:
        _name_check(name, "InvalidApplicationNameException", "application name")
        app = self._applications.get(name)
        if app is None:
            raise CodeDeployError(
                "ApplicationDoesNotExistException", f"No application found for name: {name}"
            )
        return app

    def create_application(self, name: str, compute_platform: str = "Server", tags: Any = None) -> str:
        """The new application's id."""
        _name_check(name, "InvalidApplicationNameException", "application name")
        with self._lock:
            if name in self._applications:
                raise CodeDeployError(
                    "ApplicationAlreadyExistsException", f"{name} already exists in your account"
                )
            app = Application(name, str(uuid.uuid4()), compute_platform, self.clock.now(), list(tags or []))
            self._applications[name] = app
            return app.application_id

    def delete_application(self, name: str) -> None:
        _name_check(name, "InvalidApplicationNameException", "application name")
        with self._lock:
            self._applications.pop(name, None)
            for key in [k for k in self._groups if k[0] == name]:
                del self._groups[key]

    def list_applications(self) -> list[str]:
        with self._lock:
            return sorted(self._applications)

    # --- deployment configs ------------------------------------------------------------------
    def _config(self, name: Any) -> DeploymentConfig:
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise CodeDeployError(
                "InvalidDeploymentConfigNameException", "Invalid deployment configuration name."
            )
        found = BUILTIN_CONFIGS.get(name) or self._custom_configs.get(name)
        if found is None:
            raise CodeDeployError(
                "DeploymentConfigDoesNotExistException", f"No deployment configuration found for name: {name}"
            )
        return found

    def create_config(
        self,
        name: str,
        compute_platform: str | None,
        traffic_routing: dict[str, Any] | None,
        minimum_healthy_hosts: dict[str, Any] | None,
    ) -> str:
        """The new configuration's id."""
        if not 1 <= len(name) <= 100 or name.startswith(BUILTIN_PREFIX):
            raise CodeDeployError(
                "InvalidDeploymentConfigNameException",
                f"Deployment configuration names must be 1-100 characters and not start with {BUILTIN_PREFIX}",
            )
        platform = compute_platform or "Server"
        if platform != LAMBDA:
            raise CodeDeployError(
                "InvalidComputePlatformException",
                "The sandbox keeps deployment configurations for the Lambda compute platform only.",
            )
        if minimum_healthy_hosts:
            raise CodeDeployError(
                "InvalidMinimumHealthyHostValueException",
                "Lambda deployment configurations take no minimumHealthyHosts.",
            )
        try:
            routing = validate_traffic_routing(traffic_routing)
        except ConfigError as exc:
            raise CodeDeployError(exc.code, exc.message) from exc
        with self._lock:
            if name in self._custom_configs:
                raise CodeDeployError(
                    "DeploymentConfigAlreadyExistsException",
                    f"A deployment configuration named {name} already exists.",
                )
            config = DeploymentConfig(
                name, LAMBDA, routing, create_time=self.clock.now(), config_id=str(uuid.uuid4())
            )
            self._custom_configs[name] = config
            return config.config_id

    def delete_config(self, name: str) -> None:
        if name in BUILTIN_CONFIGS:
            raise CodeDeployError(
                "InvalidOperationException", f"The built-in configuration {name} cannot be deleted."
            )
        with self._lock:
            users = [g.name for g in self._groups.values() if g.deployment_config_name == name]
            if users:
                raise CodeDeployError(
                    "DeploymentConfigInUseException",
                    f"The deployment configuration {name} is used by deployment group(s) {', '.join(users)}.",
                )
            self._custom_configs.pop(name, None)

    def list_configs(self) -> list[str]:
        with self._lock:
            return sorted([*BUILTIN_CONFIGS, *self._custom_configs])

    # --- deployment groups -------------------------------------------------------------------
    def _group(self, application: str, name: Any) -> DeploymentGroup:
        self._application(application)
        _name_check(name, "InvalidDeploymentGroupNameException", "deployment group name")
        group = self._groups.get((application, name))
        if group is None:
            raise CodeDeployError(
                "DeploymentGroupDoesNotExistException", f"No Deployment Group found for name: {name}"
            )
        return group

    def _lambda_config_name(self, app: Application, name: str) -> str:
        config = self._config(name)
        if config.compute_platform != app.compute_platform:
            raise CodeDeployError(
                "InvalidDeploymentConfigNameException",
                f"Deployment configuration {name} is for the {config.compute_platform} compute platform, "
                f"application {app.name} is {app.compute_platform}.",
            )
        return name

    @staticmethod
    def _alarm_config(config: dict[str, Any]) -> dict[str, Any]:
        alarms = list(config.get("alarms") or [])
        if len(alarms) > MAX_ALARMS:
            raise CodeDeployError(
                "AlarmsLimitExceededException", f"A deployment group takes at most {MAX_ALARMS} alarms."
            )
        if config.get("enabled") and not alarms:
            raise CodeDeployError(
                "InvalidAlarmConfigException", "An enabled alarm configuration needs alarms."
            )
        names = [a.get("name") for a in alarms]
        if any(not n for n in names) or len(set(names)) != len(names):
            raise CodeDeployError("InvalidAlarmConfigException", "Alarm names must be given once each.")
        return {
            "enabled": bool(config.get("enabled", False)),
            "ignorePollAlarmFailure": bool(config.get("ignorePollAlarmFailure", False)),
            "alarms": [{"name": n} for n in names],
        }

    @staticmethod
    def _rollback_config(config: dict[str, Any]) -> dict[str, Any]:
        events = list(config.get("events") or [])
        if config.get("enabled") and not events:
            raise CodeDeployError(
                "InvalidAutoRollbackConfigException", "An enabled auto-rollback configuration needs events."
            )
        return {"enabled": bool(config.get("enabled", False)), "events": sorted(set(events))}

    @staticmethod
    def _style(app: Application, style: dict[str, Any]) -> dict[str, str]:
        merged = {**LAMBDA_STYLE, **style}
        if app.compute_platform == LAMBDA and merged != LAMBDA_STYLE:
            raise CodeDeployError(
                "InvalidDeploymentStyleException",
                "Lambda deployment groups use deploymentType BLUE_GREEN with WITH_TRAFFIC_CONTROL.",
            )
        return merged

    @staticmethod
    def _role(arn: Any) -> str:
        if not isinstance(arn, str) or not arn.startswith("arn:aws:iam::") or ":role/" not in arn:
            raise CodeDeployError(
                "InvalidRoleException", f"The service role ARN {arn!r} is not an IAM role ARN."
            )
        return arn

    def create_group(self, application: str, name: str, request: dict[str, Any]) -> str:
        """The new group's id."""
        _name_check(name, "InvalidDeploymentGroupNameException", "deployment group name")
        with self._lock:
            app = self._application(application)
            if (application, name) in self._groups:
                raise CodeDeployError(
                    "DeploymentGroupAlreadyExistsException",
                    f"A deployment group named {name} already exists for application {application}.",
                )
            default_config = (
                "CodeDeployDefault.LambdaAllAtOnce"
                if app.compute_platform == LAMBDA
                else "CodeDeployDefault.OneAtATime"
            )
            group = DeploymentGroup(
                application=application,
                name=name,
                group_id=str(uuid.uuid4()),
                service_role_arn=self._role(request.get("serviceRoleArn")),
                deployment_config_name=self._lambda_config_name(
                    app, request.get("deploymentConfigName") or default_config
                ),
                compute_platform=app.compute_platform,
                tags=list(request.get("tags") or []),
                trigger_configurations=list(request.get("triggerConfigurations") or []),
            )
            if "alarmConfiguration" in request:
                group.alarm_configuration = self._alarm_config(request["alarmConfiguration"])
            if "autoRollbackConfiguration" in request:
                group.auto_rollback_configuration = self._rollback_config(
                    request["autoRollbackConfiguration"]
                )
            group.deployment_style = self._style(app, request.get("deploymentStyle") or {})
            self._groups[(application, name)] = group
            return group.group_id

    def update_group(self, application: str, current_name: str, request: dict[str, Any]) -> None:
        with self._lock:
            app = self._application(application)
            group = self._group(application, current_name)
            new_name = request.get("newDeploymentGroupName")
            if new_name and new_name != current_name:
                _name_check(new_name, "InvalidDeploymentGroupNameException", "deployment group name")
                if (application, new_name) in self._groups:
                    raise CodeDeployError(
                        "DeploymentGroupAlreadyExistsException",
                        f"A deployment group named {new_name} already exists.",
                    )
            # Validate everything before changing anything.
            config_name = (
                self._lambda_config_name(app, request["deploymentConfigName"])
                if request.get("deploymentConfigName")
                else group.deployment_config_name
            )
            role = (
                self._role(request["serviceRoleArn"])
                if request.get("serviceRoleArn")
                else group.service_role_arn
            )
            alarms = (
                self._alarm_config(request["alarmConfiguration"])
                if "alarmConfiguration" in request
                else group.alarm_configuration
            )
            rollback = (
                self._rollback_config(request["autoRollbackConfiguration"])
                if "autoRollbackConfiguration" in request
                else group.auto_rollback_configuration
            )
            style = (
                self._style(app, request["deploymentStyle"])
                if "deploymentStyle" in request
                else group.deployment_style
            )
            group.deployment_config_name, group.service_role_arn = config_name, role
            group.alarm_configuration, group.auto_rollback_configuration = alarms, rollback
            group.deployment_style = style
            if "triggerConfigurations" in request:
                group.trigger_configurations = list(request["triggerConfigurations"] or [])
            if new_name and new_name != current_name:
                del self._groups[(application, current_name)]
                group.name = new_name
                self._groups[(application, new_name)] = group
                for dep in self._deployments.values():
                    if dep.application == application and dep.group_name == current_name:
                        dep.group_name = new_name

    def delete_group(self, application: str, name: str) -> None:
        _name_check(application, "InvalidApplicationNameException", "application name")
        _name_check(name, "InvalidDeploymentGroupNameException", "deployment group name")
        with self._lock:
            self._groups.pop((application, name), None)

    def list_groups(self, application: str) -> list[str]:
        with self._lock:
            self._application(application)
            return sorted(name for app, name in self._groups if app == application)

    def _group_view(self, group: DeploymentGroup) -> GroupView:
        attempted = self._deployments.get(group.last_attempted or "")
        successful = self._deployments.get(group.last_successful or "")
        return copy.deepcopy(GroupView(group, attempted, successful))

    # --- deployments -------------------------------------------------------------------------
    def _deployment(self, deployment_id: Any) -> Deployment:
        if not deployment_id:
            raise CodeDeployError("DeploymentIdRequiredException", "A deployment ID must be specified.")
        if not is_deployment_id(deployment_id):
            raise CodeDeployError(
                "InvalidDeploymentIdException",
                f"The deployment ID {deployment_id!r} is not in a valid format.",
            )
        dep = self._deployments.get(deployment_id)
        if dep is None:
            raise CodeDeployError(
                "DeploymentDoesNotExistException", f"The deployment {deployment_id} could not be found."
            )
        return dep

    def create_deployment(self, request: dict[str, Any]) -> str:
        """The new deployment's id; its runner is already on its way."""
        description = _description(request)
        with self._lock:
            app, group = self._deployment_target(request)
            sha, content, spec = self._deployment_revision(app, request)
            config = self._deployment_config(request, group)
            self._check_no_active_deployment(group)
            dep = self._new_deployment(request, group, config, sha, spec, description)
            self._record_revision(app, content, sha, group.name, dep.create_time)
            runner = self._add_deployment(dep, group)
        runner.start()
        return dep.deployment_id

    def _deployment_target(self, request: dict[str, Any]) -> tuple[Application, DeploymentGroup]:
        """The Lambda application and deployment group the request names."""
        application = request["applicationName"]
        app = self._application(application)
        group_name = request.get("deploymentGroupName")
        if not group_name:
            raise CodeDeployError(
                "DeploymentGroupNameRequiredException", "The deployment group name is required."
            )
        group = self._group(application, group_name)
        if app.compute_platform != LAMBDA:
            raise CodeDeployError(
                "InvalidComputePlatformException",
                f"Application {application} is for {app.compute_platform}; the sandbox runs Lambda deployments only.",
            )
        return app, group

    def _deployment_revision(self, app: Application, request: dict[str, Any]) -> tuple[str, str, AppSpec]:
        """(sha256, content, parsed AppSpec) of the revision: given inline or registered before."""
        revision = request.get("revision")
        if not revision:
            raise CodeDeployError("RevisionRequiredException", "A revision must be specified.")
        sha, content = revision_key(revision)
        if content is None:
            record = app.revisions.get(sha)
            if record is None:
                raise CodeDeployError(
                    "RevisionDoesNotExistException", f"No revision with sha256 {sha} is registered."
                )
            content = record.revision["appSpecContent"]["content"]
        try:
            spec = appspec_module.parse(content)
        except AppSpecError as exc:
            raise CodeDeployError("InvalidRevisionException", f"The AppSpec is not valid: {exc}") from exc
        return sha, content, spec

    def _deployment_config(self, request: dict[str, Any], group: DeploymentGroup) -> DeploymentConfig:
        """The request's deployment config, else the group's; a Lambda one either way."""
        config = self._config(request.get("deploymentConfigName") or group.deployment_config_name)
        if config.compute_platform != LAMBDA:
            raise CodeDeployError(
                "InvalidDeploymentConfigNameException",
                f"Deployment configuration {config.name} is not for the Lambda compute platform.",
            )
        return config

    def _check_no_active_deployment(self, group: DeploymentGroup) -> None:
        """A deployment group runs one deployment at a time."""
        active = [
            d
            for d in self._deployments.values()
            if d.active and d.application == group.application and d.group_name == group.name
        ]
        if active:
            raise CodeDeployError(
                "DeploymentLimitExceededException",
                f"The Deployment Group '{group.name}' already has an active Deployment '{active[0].deployment_id}'",
            )

    def _new_deployment(
        self,
        request: dict[str, Any],
        group: DeploymentGroup,
        config: DeploymentConfig,
        sha: str,
        spec: AppSpec,
        description: str,
    ) -> Deployment:
        """The deployment record; the request's rollback and alarm settings override the group's."""
        rollback = (
            self._rollback_config(request["autoRollbackConfiguration"])
            if request.get("autoRollbackConfiguration")
            else dict(group.auto_rollback_configuration)
        )
        alarms = (
            self._alarm_config(request["overrideAlarmConfiguration"])
            if request.get("overrideAlarmConfiguration")
            else dict(group.alarm_configuration)
        )
        return Deployment(
            deployment_id=self._unused_id(),
            application=group.application,
            group_name=group.name,
            group_id=group.group_id,
            config=config,
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"sha256": sha}},
            appspec=spec,
            create_time=self.clock.now(),
            description=description,
            auto_rollback_configuration=rollback,
            alarm_configuration=alarms,
            alarm_overridden=bool(request.get("overrideAlarmConfiguration")),
        )

    def _add_deployment(self, dep: Deployment, group: DeploymentGroup) -> DeploymentRunner:
        """Keep the deployment and give it its runner (started by the caller, once the lock is released)."""
        self._deployments[dep.deployment_id] = dep
        group.last_attempted = dep.deployment_id
        plan = Plan(dep.deployment_id, dep.appspec, dep.config.traffic_routing, dep.alarm_configuration)
        runner = DeploymentRunner(
            self, plan, self._port_for(group), self._alarm_poller_for(group), self.clock, self.hook_timeout
        )
        self._runners[dep.deployment_id] = runner
        return runner

    def _acting_role(self, group: DeploymentGroup) -> str:
        """The role a deployment of the group acts as: its service role when the sandbox enforces IAM, else
        "" (the service's own port)."""
        return group.service_role_arn if self._role_aws is not None and group.service_role_arn else ""

    def _port_for(self, group: DeploymentGroup) -> AwsPort:
        """How the deployment reaches Lambda and CloudWatch: as the group's service role when the sandbox
        enforces IAM (the engine's lock is held by the caller)."""
        role = self._acting_role(group)
        if self._role_aws is None or not role:
            return self.aws
        port = self._role_ports.get(role)
        if port is None:
            port = self._role_ports[role] = self._role_aws(role, self.aws)
        return port

    def _alarm_poller_for(self, group: DeploymentGroup) -> AlarmPoller:
        """The poller whose reads the deployment judges its alarms on: its role's (the engine's lock is held
        by the caller)."""
        role = self._acting_role(group)
        poller = self._alarm_pollers.get(role)
        if poller is None:
            poller = self._alarm_pollers[role] = AlarmPoller(self._port_for(group), self.clock)
        return poller

    def deployment_group_of(self, deployment_id: str) -> tuple[str, str] | None:
        """(application, deployment group) of a deployment, for IAM, which authorises on the group."""
        with self._lock:
            dep = self._deployments.get(deployment_id)
            return None if dep is None else (dep.application, dep.group_name)

    def _unused_id(self) -> str:
        while True:
            candidate = new_deployment_id()
            if candidate not in self._deployments:
                return candidate

    @staticmethod
    def _record_revision(app: Application, content: str, sha: str, group: str, now: float) -> None:
        record = app.revisions.get(sha)
        if record is None:
            record = app.revisions[sha] = RevisionRecord(stored_revision(content, sha), register_time=now)
        record.first_used_time = record.first_used_time or now
        record.last_used_time = now
        if group not in record.deployment_groups:
            record.deployment_groups.append(group)

    def new_rollback_deployment(self, failed_id: str, spec: AppSpec, content: str) -> str:
        """The deployment that puts the failed one's alias back (it starts InProgress; the failed one's
        runner finishes it with `finish_rollback`). The failed deployment's rollbackInfo points at it."""
        sha = appspec_module.content_sha256(content)
        with self._lock:
            failed = self._deployments[failed_id]
            now = self.clock.now()
            rollback = Deployment(
                deployment_id=self._unused_id(),
                application=failed.application,
                group_name=failed.group_name,
                group_id=failed.group_id,
                config=BUILTIN_CONFIGS["CodeDeployDefault.LambdaAllAtOnce"],
                revision={"revisionType": "AppSpecContent", "appSpecContent": {"sha256": sha}},
                appspec=spec,
                create_time=now,
                creator="codeDeployRollback",
                description=f"Rollback of deployment {failed.deployment_id}",
                status=IN_PROGRESS,
                start_time=now,
                target_status=IN_PROGRESS,
                rollback_info={
                    "rollbackTriggeringDeploymentId": failed.deployment_id,
                    "rollbackMessage": f"Rollback of deployment {failed.deployment_id}.",
                },
                lifecycle={name: LifecycleRecord(name, IN_PROGRESS, now) for name in LIFECYCLE_EVENTS},
            )
            app = self._applications.get(failed.application)
            if app is not None:
                self._record_revision(app, content, sha, failed.group_name, now)
            self._deployments[rollback.deployment_id] = rollback
            group = self._groups.get((failed.application, failed.group_name))
            if group is not None:
                group.last_attempted = rollback.deployment_id
            restored = failed.appspec
            failed.rollback_info = {
                "rollbackDeploymentId": rollback.deployment_id,
                "rollbackMessage": f"Automatic rollback triggered; rollback deployment {rollback.deployment_id} "
                f"restores version {restored.current_version} on alias {restored.alias}.",
            }
            return rollback.deployment_id

    def list_deployments(self, request: dict[str, Any]) -> list[str]:
        application, group_name = request.get("applicationName"), request.get("deploymentGroupName")
        statuses = set(request.get("includeOnlyStatuses") or [])
        time_range = request.get("createTimeRange") or {}
        with self._lock:
            if group_name and not application:
                raise CodeDeployError(
                    "ApplicationNameRequiredException",
                    "An application name is required with a deployment group name.",
                )
            if application:
                self._application(application)
            if application and group_name:
                self._group(application, group_name)
            if request.get("externalId"):
                return []
            chosen = [
                d
                for d in self._deployments.values()
                if (not application or d.application == application)
                and (not group_name or d.group_name == group_name)
                and (not statuses or d.status in statuses)
                and (time_range.get("start") is None or d.create_time >= time_range["start"])
                and (time_range.get("end") is None or d.create_time <= time_range["end"])
            ]
            return [d.deployment_id for d in sorted(chosen, key=lambda d: d.create_time, reverse=True)]

    def application_revision(self, application: str, revision: dict[str, Any]) -> RevisionRecord:
        with self._lock:
            app = self._application(application)
            sha, _ = revision_key(revision)
            record = app.revisions.get(sha)
            if record is None:
                raise CodeDeployError(
                    "RevisionDoesNotExistException",
                    f"No revision with sha256 {sha} exists for application {application}.",
                )
            return copy.deepcopy(record)

    def register_revision(self, application: str, revision: dict[str, Any], description: str) -> None:
        with self._lock:
            app = self._application(application)
            sha, content = revision_key(revision)
            if content is None:
                raise CodeDeployError("InvalidRevisionException", "Registering a revision needs its content.")
            if sha not in app.revisions:
                app.revisions[sha] = RevisionRecord(
                    stored_revision(content, sha), self.clock.now(), description=description
                )

    def stop_deployment(self, deployment_id: str, auto_rollback: bool | None) -> tuple[str, str]:
        with self._lock:
            dep = self._deployment(deployment_id)
            if not dep.active:
                raise CodeDeployError(
                    "DeploymentAlreadyCompletedException",
                    f"The deployment {deployment_id} has already completed.",
                )
            if dep.stop_request is None:
                dep.stop_request = StopRequest(auto_rollback)
            runner = self._runners.get(deployment_id)
        if runner is not None:
            runner.nudge()
        return "Pending", "Stopping Active Deployment"

    def put_hook_status(self, deployment_id: Any, execution_id: Any, status: Any) -> str:
        with self._lock:
            dep = self._deployment(deployment_id)
            execution = dep.hook_executions.get(execution_id) if isinstance(execution_id, str) else None
            if execution is None:
                raise CodeDeployError(
                    "InvalidLifecycleEventHookExecutionIdException",
                    f"The lifecycle event hook execution ID {execution_id!r} does not belong to deployment "
                    f"{deployment_id}.",
                )
            if status not in (SUCCEEDED, "Failed"):
                raise CodeDeployError(
                    "InvalidLifecycleEventHookExecutionStatusException",
                    f"The status {status!r} is not valid: a hook reports Succeeded or Failed.",
                )
            if execution.reported is not None or execution.closed:
                raise CodeDeployError(
                    "LifecycleEventAlreadyCompletedException",
                    f"The {execution.lifecycle_event} lifecycle event of deployment {deployment_id} has already "
                    "completed.",
                )
            execution.reported = status
            runner = self._runners.get(dep.deployment_id)
        if runner is not None:
            runner.nudge()
        return str(execution_id)

    def _target(self, deployment_id: str, target_id: Any) -> Deployment:
        dep = self._deployment(deployment_id)
        if not isinstance(target_id, str) or not target_id:
            raise CodeDeployError("DeploymentTargetIdRequiredException", "A target ID must be specified.")
        if target_id != dep.target_id:
            raise CodeDeployError(
                "DeploymentTargetDoesNotExistException",
                f"The target {target_id} is not part of deployment {deployment_id}.",
            )
        return dep

    def target_ids(self, deployment_id: str, filters: dict[str, Iterable[str]]) -> list[str]:
        with self._lock:
            dep = self._deployment(deployment_id)
            for name in filters:
                if name not in ("TargetStatus", "ServerInstanceLabel"):
                    raise CodeDeployError(
                        "InvalidTargetFilterNameException", f"Unknown target filter {name}."
                    )
            statuses = set(filters.get("TargetStatus") or [])
            if statuses and dep.target_status not in statuses:
                return []
            return [dep.target_id]

    # --- reads: copies taken under the lock, so a reader sees one moment and never the live records --
    def get_application(self, name: Any) -> Application:
        return self.get_applications([name])[0]

    def get_applications(self, names: Iterable[Any]) -> list[Application]:
        with self._lock:
            return copy.deepcopy([self._application(name) for name in names])

    def get_config(self, name: Any) -> DeploymentConfig:
        with self._lock:
            return self._config(name)  # frozen

    def get_group(self, application: str, name: Any) -> GroupView:
        with self._lock:
            return self._group_view(self._group(application, name))

    def get_groups(self, application: str, names: Iterable[str]) -> tuple[list[GroupView], list[str]]:
        """The groups found, and the names not found."""
        found, missing = [], []
        with self._lock:
            self._application(application)
            for name in names:
                group = self._groups.get((application, name))
                if group is None:
                    missing.append(name)
                else:
                    found.append(self._group_view(group))
        return found, missing

    def get_deployment(self, deployment_id: Any) -> Deployment:
        with self._lock:
            return copy.deepcopy(self._deployment(deployment_id))

    def get_deployments(self, deployment_ids: Iterable[Any]) -> list[Deployment]:
        """The deployments that exist, in the order asked; a malformed id is still an error."""
        found = []
        with self._lock:
            for deployment_id in deployment_ids:
                try:
                    found.append(self._deployment(deployment_id))
                except CodeDeployError as exc:
                    if exc.code != "DeploymentDoesNotExistException":
                        raise
            return copy.deepcopy(found)

    def get_target(self, deployment_id: str, target_id: Any) -> Deployment:
        return self.get_targets(deployment_id, [target_id])[0]

    def get_targets(self, deployment_id: str, target_ids: Iterable[Any]) -> list[Deployment]:
        """The deployment once per target asked for (a Lambda deployment has one target: its alias)."""
        with self._lock:
            return copy.deepcopy([self._target(deployment_id, target_id) for target_id in target_ids])

    # --- what runners report (runner.RunnerEngine); each call takes the lock ------------------------
    def is_stopping(self) -> bool:
        return self._stopping.is_set()

    def runner_done(self, deployment_id: str) -> None:
        with self._lock:
            self._runners.pop(deployment_id, None)

    def stop_request(self, deployment_id: str) -> StopRequest | None:
        with self._lock:
            return self._deployments[deployment_id].stop_request

    def mark_started(self, deployment_id: str) -> None:
        with self._lock:
            self._deployments[deployment_id].begin(self.clock.now())

    def begin_event(self, deployment_id: str, name: str) -> None:
        with self._lock:
            self._deployments[deployment_id].begin_event(name, self.clock.now())

    def end_event(
        self, deployment_id: str, name: str, status: str, diagnostics: dict[str, str] | None = None
    ) -> None:
        with self._lock:
            self._deployments[deployment_id].end_event(name, status, self.clock.now(), diagnostics)

    def set_function_arn(self, deployment_id: str, arn: str | None) -> None:
        with self._lock:
            self._deployments[deployment_id].function_arn = arn

    def open_hook(self, deployment_id: str, lifecycle_event: str, function: str) -> str:
        """A new hook execution the hook reports on with PutLifecycleEventHookExecutionStatus; its id."""
        execution = HookExecution(new_hook_execution_id(), lifecycle_event, function)
        with self._lock:
            self._deployments[deployment_id].hook_executions[execution.execution_id] = execution
        return execution.execution_id

    def hook_report(self, deployment_id: str, execution_id: str) -> str | None:
        with self._lock:
            return self._deployments[deployment_id].hook_executions[execution_id].reported

    def close_hook(self, deployment_id: str, execution_id: str) -> str | None:
        """Stop waiting for the hook (a later report is refused); what it reported until now, if anything."""
        with self._lock:
            execution = self._deployments[deployment_id].hook_executions[execution_id]
            execution.closed = True
            return execution.reported

    def set_target_weight(self, deployment_id: str, weight: float) -> None:
        with self._lock:
            self._deployments[deployment_id].shift(weight, self.clock.now())

    def mark_succeeded(self, deployment_id: str) -> None:
        with self._lock:
            dep = self._deployments[deployment_id]
            dep.succeed(self.clock.now())
            group = self._groups.get((dep.application, dep.group_name))
            if group is not None:
                group.last_successful = dep.deployment_id

    def fail_target(self, deployment_id: str, error: dict[str, str], diagnostics: dict[str, str]) -> None:
        with self._lock:
            self._deployments[deployment_id].fail_target(error, diagnostics, self.clock.now())

    def rollback_wanted(self, deployment_id: str, trigger: str, explicit: bool | None) -> bool:
        with self._lock:
            return self._deployments[deployment_id].rollback_wanted(trigger, explicit)

    def finish_rollback(
        self, rollback_id: str, failed_id: str, error: dict[str, str] | None, started: float, ended: float
    ) -> None:
        with self._lock:
            rollback, failed = self._deployments[rollback_id], self._deployments[failed_id]
            rollback.finish_rollback(failed.function_arn, error, started, ended)
            if error is None:
                failed.target_weight = 0.0

    def mark_ended(self, deployment_id: str, status: str) -> None:
        with self._lock:
            self._deployments[deployment_id].end(status, self.clock.now())

    def emit(self, deployment_id: str, state: str) -> None:
        """Send the deployment's state-change event to the default bus (best effort, as on AWS)."""
        with self._lock:
            deployment = self._deployments[deployment_id]
            group = self._groups.get((deployment.application, deployment.group_name))
            detail = {
                "region": self.region,
                "deploymentId": deployment_id,
                "instanceGroupId": group.group_id if group else deployment.group_id,
                "deploymentGroup": deployment.group_name,
                "application": deployment.application,
                "state": state,
            }
            resources = [self._application_arn(deployment.application), self._group_arn(deployment)]
        try:
            self.aws.put_event(detail, resources, self.clock.now_datetime())
        except AwsCallError as exc:
            log.warning("state-change event %s of %s not delivered: %s", state, deployment_id, exc)
