"""CodeDeploy AfterAllowTraffic hook: post-traffic checks through the alias, then the canary analysis."""

from __future__ import annotations

from typing import Any

# boto3 before anything else: its import, the largest, run nested inside other imports hits CPython
# 3.13's frame-stack chunk churn (gh-142183, fixed in 3.13 releases after March 2026), up to ~30 ms.
import boto3  # noqa: F401
from aws_lambda_powertools.utilities.typing import LambdaContext

# Every post-traffic run judges the canary, which rollout.hooks imports only where it is judged (the
# pre-traffic hook and the failure reporter never do): load it at init here.
import rollout.canary
import rollout.lambda_metrics  # noqa: F401
from rollout import lambda_ops
from rollout.hooks import POST_TRAFFIC, handle_lifecycle_event
from rollout.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle_lifecycle_event(POST_TRAFFIC, event, context, invoke=lambda_ops.invoke_once)
