"""On-failure destination of both hooks: report Failed for a hook that died without reporting."""

from __future__ import annotations

from typing import Any

# boto3 before anything else: its import, the largest, run nested inside other imports hits CPython
# 3.13's frame-stack chunk churn (gh-142183, fixed in 3.13 releases after March 2026), up to ~30 ms.
import boto3  # noqa: F401
from aws_lambda_powertools.utilities.typing import LambdaContext

from rollout.errors import DestinationRecordError
from rollout.hook_failures import report_dead_hook
from rollout.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return report_dead_hook(event)
    except DestinationRecordError as exc:
        # Nothing identifies a hook execution to report for; retrying cannot change that.
        logger.error("not a hook destination record; skipped", extra={"error": str(exc), "event": event})
        return {"status": "Skipped", "reason": str(exc)}
