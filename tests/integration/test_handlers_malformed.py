"""No handler dies on malformed input: each answers garbage with a result, not an exception."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

from tests.support.aws_stack import StackUnderTest

HANDLERS = [
    "artifact_deployer",
    "pre_traffic_hook",
    "post_traffic_hook",
    "hook_failure_reporter",
    "deployment_events",
    "reconciler",
    "slack_notifier",
    "deployment_actions",
    "slack_interactions",
]

MALFORMED: list[Any] = [
    None,
    "not an event",
    [],
    {},
    {"detail": "not an object"},
    {"Records": "nope"},
    {"Records": [{"Sns": {"Message": "{not json"}}]},
    {"DeploymentId": 42, "LifecycleEventHookExecutionId": None},
    {"requestContext": {"condition": "RetriesExhausted"}, "requestPayload": "garbage"},
    {"action": "approve", "deployment_id": "d-AAAAAAAAA", "by": "nobody"},
    {"headers": {"x-slack-signature": "v0=00"}, "requestContext": {"http": {"method": "POST"}}, "body": 7},
]


@pytest.mark.parametrize("name", HANDLERS)
def test_every_handler_survives_malformed_events(
    name: str, stack: StackUnderTest, lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "SLACK_WEBHOOK_SECRET_ARN", "arn:aws:secretsmanager:us-east-1:123456789012:secret:none"
    )
    handler = importlib.import_module(f"functions.{name}.app").lambda_handler
    for event in MALFORMED:
        handler(event, lambda_context)  # must not raise
