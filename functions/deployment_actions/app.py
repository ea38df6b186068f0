"""Approve or reject a deployment's approval gate, expire one nobody answered, or abort a deployment.

Invoked by `rollout approve/reject`, the Slack endpoint and the reconciler (see rollout.approvals).
"""

from __future__ import annotations

from typing import Any

# boto3 before anything else: its import, the largest, run nested inside other imports hits CPython
# 3.13's frame-stack chunk churn (gh-142183, fixed in 3.13 releases after March 2026), up to ~30 ms.
import boto3  # noqa: F401
from aws_lambda_powertools.utilities.typing import LambdaContext

# What every request needs (its identity proof, checked with STS; a Slack click's thread), which
# rollout.approvals imports only where requests are handled, for the functions that use its gates alone.
import rollout.identity
import rollout.slack_interactions
import rollout.sts_ops  # noqa: F401
from rollout.approvals import handle
from rollout.deadlines import Deadline
from rollout.observability import logger, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, deadline=Deadline.of_invocation(context))
