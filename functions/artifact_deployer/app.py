"""Artifact deployer: an upload to the artifact bucket becomes a published version and a deployment.

Triggered by EventBridge `Object Created` events (or classic S3 notifications); the flow lives in
rollout.deployer.
"""

from __future__ import annotations

from typing import Any

# boto3 before anything else: its import, the largest, run nested inside other imports hits CPython
# 3.13's frame-stack chunk churn (gh-142183, fixed in 3.13 releases after March 2026), up to ~30 ms.
import boto3  # noqa: F401

from rollout import deployer
from rollout.config import Settings
from rollout.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return deployer.handle_event(event, Settings.from_env(), context)
