"""Slack interactivity endpoint (a function URL): the buttons on Rollout's messages.

Requests are verified with the Slack signing secret and acted on only for allowed Slack users
(see rollout.slack_interactions); the action goes to deployment_actions.
"""

from __future__ import annotations

from typing import Any

# Every request's signature is verified with slack_sdk, which rollout.slack_interactions imports only
# where it verifies (the functions that merely answer in a thread never do): load it at init here.
import slack_sdk.signature  # noqa: F401
from aws_lambda_powertools.utilities.typing import LambdaContext

from rollout.observability import logger, tracer
from rollout.slack_interactions import Endpoint, handle


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return handle(event, Endpoint.from_env(), logger)
