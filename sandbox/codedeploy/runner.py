"""Runs one Lambda deployment: Start → BeforeAllowTraffic → AllowTraffic → AfterAllowTraffic → End.

One thread per deployment. Every wait is on the sandbox clock and wakes early when a hook reports,
a stop is requested or the engine shuts down; alarms are polled throughout, each poll answered by the
role's shared `AlarmPoller` and judged here. Any way out of the
lifecycle ends the deployment in a final, recorded status with its state-change event sent.

The runner owns the flow, the engine owns the record: every change goes through a `RunnerEngine` call
that takes the engine's lock itself, and the runner reads what it needs from its own `Plan`."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sandbox.codedeploy.alarm_poller import AlarmPoller
from sandbox.codedeploy.appspec import AFTER_ALLOW_TRAFFIC, BEFORE_ALLOW_TRAFFIC, AppSpec, render
from sandbox.codedeploy.aws import AwsCallError, AwsPort
from sandbox.codedeploy.configs import weight_schedule
from sandbox.codedeploy.models import (
    ALLOW_TRAFFIC,
    END,
    FAILED,
    ON_ALARM,
    ON_FAILURE,
    ON_REQUEST,
    SKIPPED,
    START,
    STOPPED,
    SUCCEEDED,
    StopRequest,
)

if TYPE_CHECKING:
    from sandbox.codedeploy.engine import SandboxClock

log = logging.getLogger(__name__)

HOOK_TIMEOUT_SECONDS = 3600.0
ALARM_POLL_FAILURES_TOLERATED = 3
THROTTLE_CODES = frozenset({"ThrottlingException", "TooManyRequestsException", "Throttling"})


class RunnerEngine(Protocol):
    """The engine as a runner sees it: the deployment's record, changed one step at a time.

    Each method takes the engine's lock itself, so the runner never holds it, not even while it waits."""

    def is_stopping(self) -> bool: ...

    def stop_request(self, deployment_id: str) -> StopRequest | None: ...

    def mark_started(self, deployment_id: str) -> None: ...

    def begin_event(self, deployment_id: str, name: str) -> None: ...

    def end_event(
        self, deployment_id: str, name: str, status: str, diagnostics: dict[str, str] | None = None
    ) -> None: ...

    def set_function_arn(self, deployment_id: str, arn: str | None) -> None: ...

    def open_hook(self, deployment_id: str, lifecycle_event: str, function: str) -> str: ...

    def hook_report(self, deployment_id: str, execution_id: str) -> str | None: ...

    def close_hook(self, deployment_id: str, execution_id: str) -> str | None: ...

    def set_target_weight(self, deployment_id: str, weight: float) -> None: ...

    def mark_succeeded(self, deployment_id: str) -> None: ...

    def fail_target(self, deployment_id: str, error: dict[str, str], diagnostics: dict[str, str]) -> None: ...

    def rollback_wanted(self, deployment_id: str, trigger: str, explicit: bool | None) -> bool: ...

    def new_rollback_deployment(self, failed_id: str, spec: AppSpec, content: str) -> str: ...

    def finish_rollback(
        self, rollback_id: str, failed_id: str, error: dict[str, str] | None, started: float, ended: float
    ) -> None: ...

    def mark_ended(self, deployment_id: str, status: str) -> None: ...

    def emit(self, deployment_id: str, state: str) -> None: ...

    def runner_done(self, deployment_id: str) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What a deployment is to do, fixed when it is created: the runner's own copy."""

    deployment_id: str
    appspec: AppSpec
    traffic_routing: dict[str, Any] | None
    alarm_configuration: dict[str, Any]


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


class DeploymentRunner:
    def __init__(
        self,
        engine: RunnerEngine,
        plan: Plan,
        aws: AwsPort,
        alarms: AlarmPoller,
        clock: SandboxClock,
        hook_timeout: float = HOOK_TIMEOUT_SECONDS,
    ) -> None:
        self.engine = engine
        self.plan = plan
        self.deployment_id = plan.deployment_id
        self.aws = aws
        self.alarms = alarms
        self.clock = clock
        self.hook_timeout = hook_timeout
        self._wake = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"codedeploy-{self.deployment_id}", daemon=True
        )
        self._alias_verified = False
        self._next_alarm_poll = 0.0
        self._alarm_failures = 0
        config = plan.alarm_configuration
        alarm_names = [a["name"] for a in config.get("alarms") or [] if a.get("name")]
        self._alarm_names = tuple(alarm_names) if config.get("enabled") else ()

    def start(self) -> None:
        self._thread.start()

    def nudge(self) -> None:
        """Something the runner may be waiting for happened (a hook reported, a stop, a shutdown)."""
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    # --- helpers -----------------------------------------------------------------------------
    def _begin_event(self, name: str) -> None:
        self.engine.begin_event(self.deployment_id, name)

    def _end_event(self, name: str, status: str, diagnostics: dict[str, str] | None = None) -> None:
        self.engine.end_event(self.deployment_id, name, status, diagnostics)

    # --- the lifecycle -----------------------------------------------------------------------
    def _run(self) -> None:
        if self._alarm_names:
            self.alarms.watch(self.deployment_id, self._alarm_names)
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
            if self._alarm_names:
                self.alarms.forget(self.deployment_id)
            self.engine.runner_done(self.deployment_id)

    def _start(self) -> None:
        self.engine.mark_started(self.deployment_id)
        self.engine.emit(self.deployment_id, "START")
        self._begin_event(START)
        self._check_stop()
        self._verify_lambda(self.plan.appspec)
        self._poll_alarms(at_start=True)
        self._end_event(START, SUCCEEDED)

    def _verify_lambda(self, spec: AppSpec) -> None:
        """The alias exists, points at the AppSpec's current version only, and the target version exists."""
        alias = self._read_alias(spec)
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
        self._check_target_version(spec)
        self.engine.set_function_arn(self.deployment_id, alias.get("AliasArn"))
        self._alias_verified = True

    def _read_alias(self, spec: AppSpec) -> dict[str, Any]:
        try:
            return self.aws.get_alias(spec.function_name, spec.alias)
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise self._aws_halt(exc, f"reading alias {spec.alias} of {spec.function_name}") from exc
            try:
                self.aws.get_function_configuration(spec.function_name)
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

    def _check_target_version(self, spec: AppSpec) -> None:
        try:
            self.aws.get_function_configuration(spec.function_name, spec.target_version)
        except AwsCallError as exc:
            if exc.code != "ResourceNotFoundException":
                raise self._aws_halt(exc, f"reading version {spec.target_version}") from exc
            raise Halt(
                FAILED,
                "INVALID_LAMBDA_CONFIGURATION",
                f"The target version {spec.target_version} of {spec.function_name} does not exist.",
                ON_FAILURE,
            ) from exc

    def _hook(self, lifecycle_event: str) -> None:
        function = self.plan.appspec.hook_for(lifecycle_event)
        if function is None:
            self._end_event(lifecycle_event, SKIPPED)
            self._check_stop()
            return
        execution_id = self.engine.open_hook(self.deployment_id, lifecycle_event, function)
        self._begin_event(lifecycle_event)
        self._invoke_hook(lifecycle_event, function, execution_id)
        reported = self._await_hook(execution_id)
        if reported is None:
            minutes = self.hook_timeout / 60
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
        if reported == FAILED:
            raise Halt(
                FAILED,
                "HOOK_EXECUTION_FAILURE",
                f"The {lifecycle_event} lifecycle event hook {function} reported Failed; "
                f"the deployment failed in lifecycle event {lifecycle_event}.",
                ON_FAILURE,
                diagnostics=_diagnostics("ScriptFailed", function, "The hook reported Failed."),
            )
        self._end_event(lifecycle_event, SUCCEEDED, _diagnostics("Success", function, "Succeeded"))

    def _invoke_hook(self, lifecycle_event: str, function: str, execution_id: str) -> None:
        payload = {"DeploymentId": self.deployment_id, "LifecycleEventHookExecutionId": execution_id}
        try:
            self.aws.invoke_async(function, payload)
        except AwsCallError as exc:
            raise Halt(
                FAILED,
                "HOOK_EXECUTION_FAILURE",
                f"The {lifecycle_event} lifecycle event hook {function} could not be invoked: {exc}",
                ON_FAILURE,
                diagnostics=_diagnostics("ScriptMissing", function, str(exc)),
            ) from exc

    def _await_hook(self, execution_id: str) -> str | None:
        """What the hook reported before the timeout, or None."""
        deadline = self.clock.now() + self.hook_timeout
        self._wait_for(
            lambda: self.engine.hook_report(self.deployment_id, execution_id) is not None, deadline
        )
        # Closing and reading are one step, so a report is either refused or counted, never both.
        return self.engine.close_hook(self.deployment_id, execution_id)

    def _allow_traffic(self) -> None:
        spec = self.plan.appspec
        routing = self.plan.traffic_routing
        assert routing is not None
        self._begin_event(ALLOW_TRAFFIC)
        began = self.clock.now()
        for step in weight_schedule(routing):
            self._wait_for(lambda: False, began + step.offset)
            if step.weight >= 1.0:
                self._set_alias(spec.target_version, {})
            else:
                self._set_alias(spec.current_version, {spec.target_version: step.weight})
            self.engine.set_target_weight(self.deployment_id, step.weight)
        self._end_event(ALLOW_TRAFFIC, SUCCEEDED)

    def _set_alias(self, version: str, weights: dict[str, float]) -> None:
        spec = self.plan.appspec
        try:
            self.aws.update_alias(spec.function_name, spec.alias, version, weights)
        except AwsCallError as exc:
            raise self._aws_halt(exc, f"updating alias {spec.alias} of {spec.function_name}") from exc

    def _succeed(self) -> None:
        self._begin_event(END)
        self._end_event(END, SUCCEEDED)
        self.engine.mark_succeeded(self.deployment_id)
        self.engine.emit(self.deployment_id, "SUCCESS")

    # --- waiting, stops and alarms ---------------------------------------------------------------
    def _wait_for(self, condition: Callable[[], bool], deadline: float) -> bool:
        """Wait until `condition` holds (True) or sandbox time reaches `deadline` (False)."""
        while True:
            self._wake.clear()
            if self.engine.is_stopping():
                raise Shutdown
            self._check_stop()
            if condition():
                return True
            now = self.clock.now()
            if now >= self._next_alarm_poll:
                self._poll_alarms()
                now = self.clock.now()
            if now >= deadline:
                return False
            until = min(deadline, self._next_alarm_poll)
            self._wake.wait(min(1.0, max(0.0, self.clock.real_seconds(until - now))))

    def _check_stop(self) -> None:
        request = self.engine.stop_request(self.deployment_id)
        if request is not None:
            raise Halt(
                STOPPED,
                "MANUAL_STOP",
                "The deployment was stopped by a StopDeployment request.",
                ON_REQUEST,
                explicit_rollback=request.auto_rollback,
            )

    def _poll_alarms(self, at_start: bool = False) -> None:
        """Judge the deployment's alarms: the first poll on a call of its own, every other on the role's read
        in this poll tick."""
        now = self.clock.now()
        self._next_alarm_poll = self.alarms.next_tick(now)
        names = self._alarm_names
        if not names:
            return
        ignore_failures = bool(self.plan.alarm_configuration.get("ignorePollAlarmFailure"))
        try:
            if at_start:
                states = self.alarms.read_alone(names)
            else:
                states = self.alarms.states(self.deployment_id, self.alarms.tick_start(now))
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
        diagnostics = halt.diagnostics or _diagnostics("UnknownError", "", halt.message)
        self.engine.fail_target(self.deployment_id, {"code": halt.code, "message": halt.message}, diagnostics)
        roll_back = self._alias_verified and self.engine.rollback_wanted(
            self.deployment_id, halt.trigger, halt.explicit_rollback
        )
        rollback = self._roll_back() if roll_back else None
        self.engine.mark_ended(self.deployment_id, halt.status)
        self.engine.emit(self.deployment_id, "STOP" if halt.status == STOPPED else "FAILURE")
        if rollback is not None:
            rollback_id, restored = rollback
            self.engine.emit(rollback_id, "START")
            self.engine.emit(rollback_id, "SUCCESS" if restored else "FAILURE")

    def _roll_back(self) -> tuple[str, bool]:
        """Point the alias back at the original version, as a rollback deployment of its own.
        Returns the rollback deployment's id and whether the alias was restored."""
        spec = self.plan.appspec
        reverse = AppSpec(spec.function_name, spec.alias, spec.target_version, spec.current_version, {})
        rollback_id = self.engine.new_rollback_deployment(self.deployment_id, reverse, render(reverse))
        started = self.clock.now()
        error: dict[str, str] | None = None
        try:
            self.aws.update_alias(spec.function_name, spec.alias, spec.current_version, {})
        except AwsCallError as exc:
            error = {"code": "INVALID_LAMBDA_CONFIGURATION", "message": f"Rollback failed: {exc}"}
        self.engine.finish_rollback(rollback_id, self.deployment_id, error, started, self.clock.now())
        return rollback_id, error is None


def _diagnostics(code: str, script: str, message: str) -> dict[str, str]:
    return {"errorCode": code, "scriptName": script, "message": message, "logTail": ""}
