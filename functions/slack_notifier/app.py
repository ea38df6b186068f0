"""SNS notifications -> Slack (Block Kit through an incoming webhook kept in Secrets Manager)."""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from rollout.observability import logger, tracer
from rollout.slack import deliver_sns_event


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return deliver_sns_event(event, os.environ.get("SLACK_WEBHOOK_SECRET_ARN", ""), logger).as_dict()
