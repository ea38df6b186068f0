"""Runs one Lambda deployment: Start → BeforeAllowTraffic → AllowTraffic → AfterAllowTraffic → End.

One thread per deployment. Every wait is on the sandbox clock and wakes early when a hook reports,
a stop is requested or the engine shuts down; alarms are polled throughout. Any way out of the
lifecycle ends the deployment in a final, recorded status with its state-change event sent."""

from __future__ import annotations

import base64
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sandbox.codedeploy.appspec import AFTER_ALLOW_TRAFFIC, BEFORE_ALLOW_TRAFFIC, AppSpec, render
from sandbox.codedeploy.aws import AwsCallError
from sandbox.codedeploy.configs import weight_schedule
from sandbox.codedeploy.models import (
    ALLOW_TRAFFIC,
    END,
    FAILED,
    IN_PROGRESS,
    ON_ALARM,
    ON_FAILURE,
    ON_REQUEST,
    PENDING,
    SKIPPED,
    START,
    STOPPED,
    SUCCEEDED,
    Deployment,
    HookExecution,
)

if TYPE_CHECKING:
    from sandbox.codedeploy.engine import CodeDeployEngine

log = logging.getLogger(__name__)

HOOK_TIMEOUT_SECONDS = 3600.0
ALARM_POLL_SECONDS = 60.0  # CodeDeploy polls alarms at least this often (sandbox time)
ALARM_POLL_FAILURES_TOLERATED = 3
THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling"})


class Shutdown(Exception):
    """The engine is stopping: leave the deployment as it is."""


@dataclass
class Halt(Exception):
    """The deployment cannot go on: it ends with `status` and errorInformation `code`/`message`."""

    status: str
    code: str
    message: str
    trigger: str  # auto-rollback event that applies
    explicit_rollback: bool | None = None
    diagnostics: dict[str, str] | None = None


def new_hook_execution_id() -> str:
    # Opaque and long, like the ids AWS hands hooks.
    return base64.b64encode(secrets.token_bytes(96)).decode()


def alarm_poll_interval(real_seconds: Callable[[float], float]) -> float:
    """Sandbox seconds between alarm polls: every sandbox minute at most, but no more than ~10/s real."""
    per_minute = real_seconds(ALARM_POLL_SECONDS)
    real = min(per_minute, max(real_seconds(5.0), 0.1))
    real = max(real, 0.02)
    return ALARM_POLL_SECONDS * real / per_minute


class DeploymentRunner:
    def __init__(self, engine: CodeDeployEngine, deployment_id: str) -> None:
        self.engine = engine
        self.deployment_id = deployment_id
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"codedeploy-{deployment_id}", daemon=True)
        self._alias_verified = False
        self._next_alarm_poll = 0.0
        self._alarm_failures = 0
        self._poll_interval = alarm_poll_interval(engine.clock.real_seconds)

    def start(self) -> None:
        self.thread.start()

    # --- helpers -----------------------------------------------------------------------------
    @property
    def dep(self) -> Deployment:
        return self.engine.deployments[self.deployment_id]

    def _now(self) -> float:
        return self.engine.clock.now()

    def _begin_event(self, name: str) -> None:
        with self.engine.lock:
            record = self.dep.lifecycle[name]
            record.status, record.start_time = IN_PROGRESS, self._now()
            self.dep.target_updated = record.start_time

    def _end_event(self, name: str, status: str, diagnostics: dict[str, str] | None = None) -> None:
        with self.engine.lock:
            record = self.dep.lifecycle[name]
            now = self._now()
            if record.start_time is None:
                record.start_time = now
            record.status, record.end_time, record.diagnostics = status, now, diagnostics
            self.dep.target_updated = now

    # --- the lifecycle -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            try:
                self._start()
                self._hook(BEFORE_ALLOW_TRAFFIC)
                self._allow_traffic()
                self._hook(AFTER_ALLOW_TRAFFIC)
                self._succeed()
            except Halt as halt:
                self._halt(halt)
        except Shutdown:
            return
        except Exception as exc:  # a bug must still leave the deployment in a final state
            log.exception("deployment %s broke", self.deployment_id)
            try:
                self._halt(
                    Halt(FAILED, "INTERNAL_ERROR", f"The sandbox failed the deployment: {exc}", ON_FAILURE)
                )
            except Exception:
                log.exception("deployment %s could not be ended cleanly", self.deployment_id)
        finally:
            self.engine.runner_done(self.deployment_id)

    def _start(self) -> None:
        with self.engine.lock:
            dep = self.dep
            dep.move(IN_PROGRESS)
            dep.start_time = self._now()
            dep.target_status = IN_PROGRESS
        self.engine.emit(dep, "START")
        self._begin_event(START)
        self._check_stop()
        self._verify_lambda(dep.appspec)
        self._poll_alarms(at_start=True)
        self._end_event(START, SUCCEEDED)

    def _verify_lambda(self, spec: AppSpec) -> None:
        aws = self.engine.aws
        try:
            alias = aws.get_alias(spec.function_name, spec.alias)
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise self._aws_halt(exc, f"reading alias {spec.alias} of {spec.function_name}") from exc
            try:
                aws.get_function_configuration(spec.function_name)
            except AwsCallError as missing:
                raise Halt(
                    FAILED,
                    "INVALID_LAMBDA_FUNCTION",
                    f"The Lambda function {spec.function_name} could not be found: {missing.message}",
                    ON_FAILURE,
                ) from missing
            raise Halt(
                FAILED,
                "INVALID_LAMBDA_CONFIGURATION",
                f"The alias {spec.alias} of Lambda function {spec.function_name} could not be found.",
                ON_FAILURE,
            ) from exc
        version = str(alias.get("FunctionVersion"))
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        if version != spec.current_version:
            raise Halt(
                FAILED,
                "INVALID_LAMBDA_CONFIGURATION",
                f"The current version {spec.current_version} in the AppSpec does not match alias "
                f"{spec.alias} of {spec.function_name}, which points to version {version}.",
                ON_FAILURE,
            )
        if weights:
            raise Halt(
                FAILED,
                "INVALID_LAMBDA_CONFIGURATION",
                f"Alias {spec.alias} of {spec.function_name} already routes traffic to versions "
                f"{', '.join(sorted(weights))}; a deployment needs an alias without additional weights.",
                ON_FAILURE,
            )
        try:
            aws.get_function_configuration(spec.function_name, spec.target_version)
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise self._aws_halt(exc, f"reading version {spec.target_version}") from exc
            raise Halt(
                FAILED,
                "INVALID_LAMBDA_CONFIGURATION",
                f"The target version {spec.target_version} of {spec.function_name} does not exist.",
                ON_FAILURE,
            ) from exc
        with self.engine.lock:
            self.dep.function_arn = alias.get("AliasArn")
        self._alias_verified = True

    def _hook(self, lifecycle_event: str) -> None:
        function = self.dep.appspec.hook_for(lifecycle_event)
        if function is None:
            self._end_event(lifecycle_event, SKIPPED)
            self._check_stop()
            return
        execution = HookExecution(new_hook_execution_id(), lifecycle_event, function)
        with self.engine.lock:
            self.dep.hook_executions[execution.execution_id] = execution
            self.engine.hook_index[execution.execution_id] = self.deployment_id
        self._begin_event(lifecycle_event)
        payload = {
            "DeploymentId": self.deployment_id,
            "LifecycleEventHookExecutionId": execution.execution_id,
        }
        try:
            self.engine.aws.invoke_async(function, payload)
        except AwsCallError as exc:
            raise Halt(
                FAILED,
                "HOOK_EXECUTION_FAILURE",
                f"The {lifecycle_event} lifecycle event hook {function} could not be invoked: {exc}",
                ON_FAILURE,
                diagnostics=_diagnostics("ScriptMissing", function, str(exc)),
            ) from exc
        deadline = self._now() + self.engine.hook_timeout
        reported = self._wait_for(lambda: execution.reported is not None, deadline)
        with self.engine.lock:
            execution.closed = True
        if not reported:
            minutes = self.engine.hook_timeout / 60
            raise Halt(
                FAILED,
                "TIMEOUT",
                f"The {lifecycle_event} lifecycle event hook {function} did not report a status within "
                f"{minutes:g} minutes.",
                ON_FAILURE,
                diagnostics=_diagnostics(
                    "ScriptTimedOut", function, "No status reported before the timeout."
                ),
            )
        if execution.reported == FAILED:
            raise Halt(
                FAILED,
                "HOOK_EXECUTION_FAILURE",
                f"The {lifecycle_event} lifecycle event hook {function} reported Failed; "
                f"the deployment failed in lifecycle event {lifecycle_event}.",
                ON_FAILURE,
                diagnostics=_diagnostics("ScriptFailed", function, "The hook reported Failed."),
            )
        self._end_event(lifecycle_event, SUCCEEDED, _diagnostics("Success", function, "Succeeded"))

    def _allow_traffic(self) -> None:
        dep = self.dep
        spec = dep.appspec
        assert dep.config.traffic_routing is not None
        self._begin_event(ALLOW_TRAFFIC)
        began = self._now()
        for step in weight_schedule(dep.config.traffic_routing):
            self._wait_for(lambda: False, began + step.offset)
            if step.weight >= 1.0:
                self._set_alias(spec.target_version, {})
            else:
                self._set_alias(spec.current_version, {spec.target_version: step.weight})
            with self.engine.lock:
                dep.target_weight = step.weight
                dep.target_updated = self._now()
        self._end_event(ALLOW_TRAFFIC, SUCCEEDED)

    def _set_alias(self, version: str, weights: dict[str, float]) -> None:
        spec = self.dep.appspec
        try:
            self.engine.aws.update_alias(spec.function_name, spec.alias, version, weights)
        except AwsCallError as exc:
            raise self._aws_halt(exc, f"updating alias {spec.alias} of {spec.function_name}") from exc

    def _succeed(self) -> None:
        self._begin_event(END)
        self._end_event(END, SUCCEEDED)
        with self.engine.lock:
            dep = self.dep
            dep.move(SUCCEEDED)
            dep.complete_time = self._now()
            dep.target_status = SUCCEEDED
            group = self.engine.groups.get((dep.application, dep.group_name))
            if group is not None:
                group.last_successful = dep.deployment_id
        self.engine.emit(dep, "SUCCESS")

    # --- waiting, stops and alarms ---------------------------------------------------------------
    def _wait_for(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Wait until `condition` holds (True) or sandbox time reaches `deadline` (False)."""
        clock = self.engine.clock
        while True:
            self.wake.clear()
            if self.engine.stopping.is_set():
                raise Shutdown
            self._check_stop()
            with self.engine.lock:
                if condition():
                    return True
            now = clock.now()
            if now >= self._next_alarm_poll:
                self._poll_alarms()
                now = clock.now()
            if now >= deadline:
                return False
            until = min(deadline, self._next_alarm_poll)
            self.wake.wait(min(1.0, max(0.0, clock.real_seconds(until - now))))

    def _check_stop(self) -> None:
        with self.engine.lock:
            request = self.dep.stop_request
        if request is not None:
            raise Halt(
                STOPPED,
                "MANUAL_STOP",
                "The deployment was stopped by a StopDeployment request.",
                ON_REQUEST,
                explicit_rollback=request.auto_rollback,
            )

    def _poll_alarms(self, at_start: bool = False) -> None:
        self._next_alarm_poll = self._now() + self._poll_interval
        config = self.dep.alarm_configuration
        names = [a["name"] for a in config.get("alarms") or [] if a.get("name")]
        if not config.get("enabled") or not names:
            return
        ignore_failures = bool(config.get("ignorePollAlarmFailure"))
        try:
            states = self.engine.aws.alarm_states(names)
        except AwsCallError as exc:
            self._alarm_failures += 1
            if not ignore_failures and self._alarm_failures >= ALARM_POLL_FAILURES_TOLERATED:
                raise Halt(
                    FAILED,
                    "INTERNAL_ERROR",
                    f"CodeDeploy could not read the deployment's alarms: {exc}",
                    ON_FAILURE,
                ) from exc
            return
        self._alarm_failures = 0
        missing = [n for n in names if n not in states]
        if missing and not ignore_failures:
            raise Halt(
                FAILED,
                "INTERNAL_ERROR",
                f"The deployment group's alarm(s) {', '.join(missing)} do not exist "
                "(set ignorePollAlarmFailure to deploy regardless).",
                ON_FAILURE,
            )
        firing = [n for n in names if states.get(n) == "ALARM"]
        if firing:
            when = "was already in ALARM when the deployment started" if at_start else "went into ALARM"
            raise Halt(
                FAILED if at_start else STOPPED,
                "ALARM_ACTIVE",
                f"The deployment was stopped because alarm {', '.join(firing)} {when}.",
                ON_ALARM,
            )

    # --- ending badly ------------------------------------------------------------------------------
    def _aws_halt(self, exc: AwsCallError, doing: str) -> Halt:
        code = "THROTTLED" if exc.code in THROTTLE_CODES else "INVALID_LAMBDA_CONFIGURATION"
        if exc.code == "ResourceNotFoundException":
            code = "INVALID_LAMBDA_FUNCTION"
        return Halt(FAILED, code, f"CodeDeploy failed {doing}: {exc}", ON_FAILURE)

    def _halt(self, halt: Halt) -> None:
        with self.engine.lock:
            dep = self.dep
            now = self._now()
            for execution in dep.hook_executions.values():
                execution.closed = True
            for record in dep.lifecycle.values():
                if record.status == IN_PROGRESS:
                    record.status, record.end_time = FAILED, now
                    record.diagnostics = halt.diagnostics or _diagnostics("UnknownError", "", halt.message)
                elif record.status == PENDING:
                    record.status = SKIPPED
            dep.error_information = {"code": halt.code, "message": halt.message}
            dep.target_status = FAILED
            dep.target_updated = now
            roll_back = self._alias_verified and dep.rollback_wanted(halt.trigger, halt.explicit_rollback)
        rollback = self._roll_back(dep) if roll_back else None
        with self.engine.lock:
            if dep.start_time is None:
                dep.start_time = now
            dep.move(halt.status)
            dep.complete_time = self._now()
        self.engine.emit(dep, "STOP" if halt.status == STOPPED else "FAILURE")
        if rollback is not None:
            self.engine.emit(rollback, "START")
            self.engine.emit(rollback, "SUCCESS" if rollback.status == SUCCEEDED else "FAILURE")

    def _roll_back(self, dep: Deployment) -> Deployment:
        """Point the alias back at the original version, as a rollback deployment of its own."""
        spec = dep.appspec
        reverse = AppSpec(spec.function_name, spec.alias, spec.target_version, spec.current_version, {})
        content = render(reverse)
        rollback = self.engine.new_rollback_deployment(dep, reverse, content)
        message = (
            f"Automatic rollback triggered; rollback deployment {rollback.deployment_id} restores version "
        )
        message += f"{spec.current_version} on alias {spec.alias}."
        with self.engine.lock:
            dep.rollback_info = {"rollbackDeploymentId": rollback.deployment_id, "rollbackMessage": message}
        now = self._now()
        outcome: str = SUCCEEDED
        error: dict[str, str] | None = None
        try:
            self.engine.aws.update_alias(spec.function_name, spec.alias, spec.current_version, {})
        except AwsCallError as exc:
            outcome = FAILED
            error = {"code": "INVALID_LAMBDA_CONFIGURATION", "message": f"Rollback failed: {exc}"}
        end = self._now()
        with self.engine.lock:
            for record in rollback.lifecycle.values():
                record.start_time, record.end_time = now, end
                record.status = (
                    SKIPPED if record.name in (BEFORE_ALLOW_TRAFFIC, AFTER_ALLOW_TRAFFIC) else outcome
                )
            rollback.function_arn = dep.function_arn
            rollback.error_information = error
            rollback.target_status = outcome
            rollback.target_weight = 1.0 if outcome == SUCCEEDED else 0.0
            rollback.target_updated = end
            rollback.move(outcome)
            rollback.complete_time = end
            if outcome == SUCCEEDED:
                dep.target_weight = 0.0
        return rollback


def _diagnostics(code: str, script: str, message: str) -> dict[str, str]:
    return {"errorCode": code, "scriptName": script, "message": message, "logTail": ""}
