"""CodeDeploy deployment state changes (EventBridge) -> ledger transitions, notifications, the queue."""

from __future__ import annotations

from typing import Any

# boto3 before anything else: its import, the largest, run nested inside other imports hits CPython
# 3.13's frame-stack chunk churn (gh-142183, fixed in 3.13 releases after March 2026), up to ~30 ms.
import boto3  # noqa: F401

# Every event goes through Powertools' Idempotency (handle_state_change_once), which
# rollout.deployment_events imports where it is used so that the reconciler skips it: load it at init.
from aws_lambda_powertools.utilities import idempotency  # noqa: F401
from aws_lambda_powertools.utilities.typing import LambdaContext

from rollout.config import Settings
from rollout.deployment_events import handle_state_change_once, parse_state_change
from rollout.errors import MalformedEvent
from rollout.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        change = parse_state_change(event)
    except MalformedEvent as exc:
        # Retrying cannot fix a malformed event: log it whole and finish cleanly.
        logger.error("malformed deployment event skipped", extra={"error": str(exc), "event": event})
        return {"skipped": str(exc)}
    logger.append_keys(deployment_id=change.deployment_id, deployment_state=str(change.state))
    return handle_state_change_once(change, Settings.from_env(), context)
