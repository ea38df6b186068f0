"""Artifact deployer: an upload to the artifact bucket becomes a published version and a deployment.

Triggered by EventBridge `Object Created` events (or classic S3 notifications); the flow lives in
rollout.deployer.
"""

from __future__ import annotations

from typing import Any

from rollout import deployer
from rollout.config import Settings
from rollout.observability import logger, metrics, tracer


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return deployer.handle_event(event, Settings.from_env(), context)
