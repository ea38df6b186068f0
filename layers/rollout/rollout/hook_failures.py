"""Reporting Failed for a hook that died (the hooks' on-failure destination).

When a hook invocation ends in an error Lambda could not retry away (a timeout, running out of
memory, a crash before reporting) or its event aged out of the async queue, Lambda sends a
destination record: requestContext.condition (RetriesExhausted | EventAgeExceeded), requestPayload
(the original lifecycle event) and responsePayload (the error). Without a report, CodeDeploy would
wait an hour; this reports Failed at once and records why on the release.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from rollout import aws, codedeploy_ops
from rollout.check_runner import FAILED, excerpt
from rollout.config import Settings
from rollout.errors import DestinationRecordError
from rollout.hooks import (
    LABELS,
    POST_TRAFFIC,
    PRE_TRAFFIC,
    REASON_CODE,
    STATUS_ALREADY_SET,
    STATUS_TAKEN,
    HookEventError,
    LifecycleEvent,
    put_status,
    report_status,
)
from rollout.ledger import Ledger, Release, now_iso
from rollout.observability import logger


def hook_of(function_arn: str, settings: Settings) -> str | None:
    """Which hook a function ARN (possibly qualified) names, or None if neither."""
    parts = function_arn.split(":")
    name = parts[6] if len(parts) > 6 and parts[5] == "function" else function_arn
    if name == settings.pre_traffic_hook or (not settings.pre_traffic_hook and name.endswith("_PreTraffic")):
        return PRE_TRAFFIC
    if name == settings.post_traffic_hook or (
        not settings.post_traffic_hook and name.endswith("_PostTraffic")
    ):
        return POST_TRAFFIC
    return None


def failure_reason(hook: str | None, record: Mapping[str, Any]) -> str:
    """A sentence saying which hook died and how, from the destination record."""
    label = f"{LABELS[hook]} hook" if hook else "lifecycle hook"
    context = _mapping(record.get("requestContext"))
    condition = str(context.get("condition") or "unknown condition")
    if condition == "EventAgeExceeded":
        return f"{label} never ran: its event expired in Lambda's queue (EventAgeExceeded)"
    response = record.get("responsePayload")
    if isinstance(response, str):
        with contextlib.suppress(ValueError):
            response = json.loads(response)
    detail = ""
    if isinstance(response, Mapping):
        kind = str(response.get("errorType") or "")
        message = str(response.get("errorMessage") or "")
        detail = f"{kind}: {message}" if kind and message else kind or message
    elif response:
        detail = str(response)
    function_error = _mapping(record.get("responseContext")).get("functionError")
    if not detail and function_error:
        detail = str(function_error)
    reason = f"{label} failed without reporting ({condition})"
    return f"{reason}: {excerpt(detail, 300)}" if detail else reason


def _mapping(value: Any) -> Mapping[str, Any]:
    """A part of the record that should be an object; empty when it is not (the lifecycle event alone
    decides what is reported)."""
    return value if isinstance(value, Mapping) else {}


def _readable_deployment(deployment_id: str) -> dict[str, Any] | None:
    """GetDeployment's deploymentInfo, or None when it cannot be read: the report matters more."""
    try:
        return codedeploy_ops.get_deployment(deployment_id)
    except (ClientError, BotoCoreError) as exc:
        logger.warning(
            "could not read the deployment", extra={"error_code": aws.error_code(exc), "error": str(exc)}
        )
        return None


def _release_of(ledger: Ledger, deployment_id: str) -> tuple[Release | None, bool]:
    """The release to record the failure on, and whether the deployment was read (when it was not and
    no release was found, whose deployment it is stays unknown).

    A hook can die a moment after its deployment started, before the by-deployment index knows it, so
    the deployment's description is read next. (Not the function's lock, as the hooks do: this role may
    not read deployment targets, where the function is named.)"""
    read: list[bool] = []

    def describe(wanted: str) -> dict[str, Any] | None:
        info = _readable_deployment(wanted)
        read.append(info is not None)
        return info

    release = ledger.of_deployment(deployment_id, describe)
    return release, release is not None or all(read)


def _after_the_hooks_own_verdict(
    ledger: Ledger,
    release: Release,
    hook: str,
    lifecycle: LifecycleEvent,
    reason: str,
    judged: dict[str, Any],
) -> dict[str, Any]:
    """The hook judged this execution and died while or after reporting it. Failed is sent first: taken,
    the hook's report never arrived, and the failure is recorded with what the hook saw. Refused because
    CodeDeploy already holds a status, the hook's report did arrive, and its own verdict stands: recorded
    as Failed here, a Succeeded it reported would read as a version that went live unproven
    (outcomes.UNPROVEN_SUCCESS)."""
    answered = put_status(lifecycle, FAILED)
    if answered == STATUS_ALREADY_SET:
        logger.info("the hook's own report had arrived before it died; its verdict stands")
        ledger.record_hook_result(release.function, release.release_id, hook, {**judged, "reported": True})
        return {"status": "AlreadyReported", "deploymentId": lifecycle.deployment_id}
    result = _failure_result(release, hook, lifecycle, reason)
    ledger.record_hook_result(
        release.function, release.release_id, hook, {**result, "reported": answered == STATUS_TAKEN}
    )
    ledger.update(release.function, release.release_id, reason_code=REASON_CODE, reason=reason)
    return {"status": FAILED, "reason": reason, "deploymentId": lifecycle.deployment_id}


def _failure_result(
    release: Release | None, hook: str, lifecycle: LifecycleEvent, reason: str
) -> dict[str, Any]:
    """The hook's result as the destination records it. What the hook recorded for this execution
    before it died (checks it ran) is kept."""
    result: dict[str, Any] = {}
    previous = ((release.hook_results or {}).get(hook) or {}) if release else {}
    if previous.get("execution_id") == lifecycle.execution_id:
        result.update(previous)
    result.update(
        verdict=FAILED,
        reason=reason,
        deployment_id=lifecycle.deployment_id,
        execution_id=lifecycle.execution_id,
        reported=False,
        reported_by="on-failure destination",
        at=now_iso(),
    )
    result.setdefault("checks", [])
    result.setdefault("canary", None)
    result.setdefault("warnings", [])
    return result


def report_dead_hook(record: Any, settings: Settings | None = None) -> dict[str, Any]:
    """Report Failed for the hook execution a destination record is about, and record why."""
    settings = settings or Settings.from_env()
    if not isinstance(record, Mapping):
        raise DestinationRecordError(f"expected a destination record object, got {type(record).__name__}")
    try:
        lifecycle = LifecycleEvent.parse(record.get("requestPayload"))
    except HookEventError as exc:
        raise DestinationRecordError(f"the record's requestPayload is not a lifecycle event: {exc}") from exc
    logger.set_correlation_id(lifecycle.deployment_id)
    hook = hook_of(str(_mapping(record.get("requestContext")).get("functionArn") or ""), settings)
    reason = failure_reason(hook, record)
    logger.warning("a hook died without reporting; reporting Failed", extra={"reason": reason, "hook": hook})

    ledger = Ledger(settings.ledger_table) if settings.ledger_table else None
    release, read = _release_of(ledger, lifecycle.deployment_id) if ledger else (None, True)
    previous = ((release.hook_results or {}).get(hook) or {}) if release is not None and hook else {}
    if previous.get("execution_id") == lifecycle.execution_id:
        if previous.get("reported"):
            logger.info(
                "the hook reported before it died; nothing to do", extra={"verdict": previous.get("verdict")}
            )
            return {"status": "AlreadyReported", "deploymentId": lifecycle.deployment_id}
        if ledger is not None and release is not None and hook and previous.get("verdict"):
            # It judged this execution (it records before reporting), then died while or after reporting.
            return _after_the_hooks_own_verdict(ledger, release, hook, lifecycle, reason, previous)
    if ledger is not None and release is not None:
        # Recorded before reporting, so that whoever hears of the failure can read why.
        result = _failure_result(release, hook, lifecycle, reason) if hook else {}
        if hook:
            ledger.record_hook_result(release.function, release.release_id, hook, result)
        ledger.update(release.function, release.release_id, reason_code=REASON_CODE, reason=reason)
        if report_status(lifecycle, FAILED) and hook:
            ledger.record_hook_result(
                release.function, release.release_id, hook, {**result, "reported": True}
            )
    elif ledger is not None and hook and not read:
        # Whose deployment it is cannot be known now: why is kept by the deployment id, for its
        # ending to record on the release (`Ledger.keep_hook_result`).
        reason = f"{reason}; no release found for it"
        result = _failure_result(None, hook, lifecycle, reason)
        ledger.keep_hook_result(lifecycle.deployment_id, hook, result)
        if report_status(lifecycle, FAILED):
            ledger.keep_hook_result(lifecycle.deployment_id, hook, {**result, "reported": True})
    else:
        report_status(lifecycle, FAILED)
    return {"status": FAILED, "reason": reason, "deploymentId": lifecycle.deployment_id}
